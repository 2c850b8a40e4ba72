"""Tencent Cloud plumbing shared by the adapters: role credentials, API 3.0 clients, the SCF async invoke.

Sits between the foundation and the adapters; the Tencent SDKs are imported lazily inside the functions that
call them, so importing this package costs nothing on a cold start.
"""
