"""The abuse limits of SPEC section 6, shared by every BFF process.

address.py   the client address: the socket peer, or behind a trusted proxy the
             right-most untrusted ``X-Forwarded-For`` hop
store.py     the counters, in the ``limits`` database that every BFF process shares
guards.py    the per-user request rate and the per-address sign-up limit (guards)
signin.py    failed sign-ins per (username, address) and per username (middleware)
"""
