"""SCF function 3 (optional): the vendor's webhook → an immediate POLL hint on the queue. Never trusts the body."""
