"""Test users: a user holding one of Ferry's roles (a group of that name).

The password is always "pw-<username>", so page and browser tests can log in.
"""

from django.contrib.auth.models import Group, User


def user_with_role(username: str, role: str | None) -> User:
    """A new user in the `role` group (no group when `role` is None)."""
    user = User.objects.create_user(username, password=password_of(username))
    if role:
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


def password_of(username: str) -> str:
    """The password `user_with_role` gives `username`."""
    return "pw-" + username
