"""People: users, their roles in challenges, API tokens, password hashing, login throttling.

Functions here take an open SQLAlchemy session; the services open it and decide who may call them.
"""
