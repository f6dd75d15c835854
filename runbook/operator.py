"""The permissions the operator (the person or pipeline running the runbook) needs.

``operator_policy()`` is the least-privilege identity policy for running the
link sections against a real account; ``rotate_operator_policy()`` and
``unlink_operator_policy()`` are the same for ``runbook rotate`` and ``runbook
unlink``. The README shows all three, and a test keeps them the same.
Resources are scoped to the service user and its policy.
"""

from __future__ import annotations

from typing import Any

# Reads first (every section compares before it changes), then the writes.
USER_ACTIONS = [
    "iam:GetUser", "iam:CreateUser",
    "iam:ListAccessKeys", "iam:CreateAccessKey", "iam:DeleteAccessKey",
    "iam:ListAttachedUserPolicies", "iam:AttachUserPolicy",
]
# Section 05 reads the user's policies (the sandbox evaluates them itself) or asks
# IAM's simulator (on aws), and lists the account's regions.
VERIFY_USER_ACTIONS = ["iam:ListUserPolicies", "iam:GetUserPolicy", "iam:ListGroupsForUser",
                       "iam:SimulatePrincipalPolicy"]
VERIFY_ACTIONS = ["ec2:DescribeRegions", "iam:GetInstanceProfile"]
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
    Section 05 needs ``ec2:DescribeRegions``, ``iam:GetInstanceProfile`` (for
    ``instance_profile``) and ``iam:SimulatePrincipalPolicy`` on the user; the
    sandbox, which has no simulator, reads the user's policies instead (a
    user in groups there also needs the group policy reads).
    ``iam:AttachUserPolicy`` is limited to attaching ``policy_name`` through
    the ``iam:PolicyARN`` condition key. ``FormPickLists`` only serves the
    pick-lists of section 03's form; without it the form shows text fields.
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ServiceUser", "Effect": "Allow",
             "Action": [a for a in USER_ACTIONS if a != "iam:AttachUserPolicy"] +
                       VERIFY_USER_ACTIONS,
             "Resource": f"arn:aws:iam::*:user/{user_name}"},
            {"Sid": "AttachOnlyThePolicy", "Effect": "Allow",
             "Action": ["iam:AttachUserPolicy"],
             "Resource": f"arn:aws:iam::*:user/{user_name}",
             "Condition": {"ArnLike": {"iam:PolicyARN": f"arn:aws:iam::*:policy/{policy_name}"}}},
            {"Sid": "ServicePolicy", "Effect": "Allow", "Action": list(POLICY_ACTIONS),
             "Resource": f"arn:aws:iam::*:policy/{policy_name}"},
            {"Sid": "VerifyLink", "Effect": "Allow", "Action": list(VERIFY_ACTIONS),
             "Resource": "*"},
            {"Sid": "FormPickLists", "Effect": "Allow", "Action": list(FORM_ACTIONS),
             "Resource": "*"},
        ],
    }


ROTATE_ACTIONS = [
    "iam:GetUser", "iam:ListAccessKeys",
    "iam:CreateAccessKey", "iam:UpdateAccessKey", "iam:DeleteAccessKey",
]
# In the order unlink calls them: each read, then the delete it may lead to.
UNLINK_USER_ACTIONS = [
    "iam:GetUser", "iam:ListAccessKeys", "iam:DeleteAccessKey", "iam:GetAccessKeyLastUsed",
    "iam:GetLoginProfile", "iam:DeleteLoginProfile",
    "iam:ListMFADevices", "iam:DeactivateMFADevice",
    "iam:ListSigningCertificates", "iam:DeleteSigningCertificate",
    "iam:ListSSHPublicKeys", "iam:DeleteSSHPublicKey",
    "iam:ListUserPolicies", "iam:DeleteUserPolicy",
    "iam:ListAttachedUserPolicies", "iam:DetachUserPolicy",
    "iam:ListGroupsForUser", "iam:DeleteUser",
]
UNLINK_POLICY_ACTIONS = [
    "iam:GetPolicy", "iam:ListEntitiesForPolicy", "iam:ListPolicyVersions",
    "iam:DeletePolicyVersion", "iam:DeletePolicy",
]


def rotate_operator_policy(user_name: str = "dockercloud-user") -> dict[str, Any]:
    """The identity policy an operator needs to rotate ``user_name``'s key on ``aws``.

    Proving the new key calls ``sts:GetCallerIdentity`` with that key, which
    needs no permission.
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "RotateTheServiceUsersKey", "Effect": "Allow",
             "Action": list(ROTATE_ACTIONS),
             "Resource": f"arn:aws:iam::*:user/{user_name}"},
        ],
    }


def unlink_operator_policy(user_name: str = "dockercloud-user",
                           policy_name: str = "dockercloud-policy") -> dict[str, Any]:
    """The identity policy an operator needs to unlink on ``aws``.

    A virtual MFA device and a group have ARNs of their own (their names are
    not known in advance), so deleting the device and leaving the group are
    granted on every MFA device and group of the account; the user's own
    calls are scoped to ``user_name``, the policy's to ``policy_name``.
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "UnlinkTheServiceUser", "Effect": "Allow",
             "Action": list(UNLINK_USER_ACTIONS),
             "Resource": f"arn:aws:iam::*:user/{user_name}"},
            {"Sid": "DeleteItsVirtualMfaDevices", "Effect": "Allow",
             "Action": ["iam:DeleteVirtualMFADevice"],
             "Resource": "arn:aws:iam::*:mfa/*"},
            {"Sid": "LeaveItsGroups", "Effect": "Allow",
             "Action": ["iam:RemoveUserFromGroup"],
             "Resource": "arn:aws:iam::*:group/*"},
            {"Sid": "DeleteTheServicePolicy", "Effect": "Allow",
             "Action": list(UNLINK_POLICY_ACTIONS),
             "Resource": f"arn:aws:iam::*:policy/{policy_name}"},
        ],
    }
