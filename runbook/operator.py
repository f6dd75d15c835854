"""The permissions the operator (the person or pipeline running the runbook) needs.

``operator_policy()`` is the least-privilege identity policy for running the
link sections against a real account; the README shows it, and a test keeps
the two the same. Resources are scoped to the service user and its policy.
"""

from __future__ import annotations

from typing import Any

# Reads first (every section compares before it changes), then the writes.
USER_ACTIONS = [
    "iam:GetUser", "iam:CreateUser",
    "iam:ListAccessKeys", "iam:CreateAccessKey", "iam:DeleteAccessKey",
    "iam:ListAttachedUserPolicies", "iam:AttachUserPolicy",
]
# Section 03's form lists the account's users and policies for its pick-lists;
# these list calls take no narrower resource than "*".
FORM_ACTIONS = ["iam:ListUsers", "iam:ListPolicies"]
POLICY_ACTIONS = [
    "iam:GetPolicy", "iam:GetPolicyVersion", "iam:ListPolicyVersions",
    "iam:CreatePolicy", "iam:CreatePolicyVersion", "iam:DeletePolicyVersion",
]


def operator_policy(user_name: str = "dockercloud-user",
                    policy_name: str = "dockercloud-policy") -> dict[str, Any]:
    """The identity policy an operator needs to run the link sections on ``aws``.

    ``sts:GetCallerIdentity`` needs no permission, so it is not listed.
    ``iam:AttachUserPolicy`` is limited to attaching ``policy_name`` through
    the ``iam:PolicyARN`` condition key. ``FormPickLists`` only serves the
    pick-lists of section 03's form; without it the form shows text fields.
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ServiceUser", "Effect": "Allow",
             "Action": [a for a in USER_ACTIONS if a != "iam:AttachUserPolicy"],
             "Resource": f"arn:aws:iam::*:user/{user_name}"},
            {"Sid": "AttachOnlyThePolicy", "Effect": "Allow",
             "Action": ["iam:AttachUserPolicy"],
             "Resource": f"arn:aws:iam::*:user/{user_name}",
             "Condition": {"ArnLike": {"iam:PolicyARN": f"arn:aws:iam::*:policy/{policy_name}"}}},
            {"Sid": "ServicePolicy", "Effect": "Allow", "Action": list(POLICY_ACTIONS),
             "Resource": f"arn:aws:iam::*:policy/{policy_name}"},
            {"Sid": "FormPickLists", "Effect": "Allow", "Action": list(FORM_ACTIONS),
             "Resource": "*"},
        ],
    }
