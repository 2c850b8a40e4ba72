"""SCF function 2 (and the self-hosted worker's core): drain the queue, one short step of a task per message.

``index.main_handler`` is the SCF entry; :mod:`consumer.drain` the loop; :mod:`consumer.dispatch` runs a step
and turns its errors into a decision; :mod:`consumer.effects` applies decisions in one crash-safe order.
"""
