"""The policy evaluator against cases from AWS's documented evaluation logic."""

from __future__ import annotations

import pytest

from runbook.evaluate import (ALLOW, EXPLICIT_DENY, IMPLICIT_DENY, Request, action_matches,
                              arn_matches, evaluate)
from runbook.policy import policy_document


def doc(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action="*", resource="*", **extra):
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action="*", resource="*", **extra):
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


REGION = lambda r: {"ec2:Region": r, "aws:RequestedRegion": r}  # noqa: E731
ROLE = "arn:aws:iam::123456789012:role/ecsInstanceRole"

CASES = [
    # (id, policies, request, expected decision)
    ("allow_matches", [doc(allow("ec2:*"))], Request("ec2:RunInstances"), ALLOW),
    ("nothing_allows__implicit_deny", [doc(allow("s3:*"))], Request("ec2:RunInstances"),
     IMPLICIT_DENY),
    ("no_policies__implicit_deny", [], Request("ec2:RunInstances"), IMPLICIT_DENY),
    ("deny_wins_over_allow_in_the_same_policy",
     [doc(allow("ec2:*"), deny("ec2:RunInstances"))], Request("ec2:RunInstances"),
     EXPLICIT_DENY),
    ("deny_wins_over_allow_in_another_policy",
     [doc(allow("*")), doc(deny("ec2:Run*"))], Request("ec2:RunInstances"), EXPLICIT_DENY),
    ("deny_of_another_action_does_not_apply",
     [doc(allow("ec2:*"), deny("ec2:TerminateInstances"))], Request("ec2:RunInstances"), ALLOW),
    ("not_action__allows_what_is_not_listed",
     [doc({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})],
     Request("ec2:RunInstances"), ALLOW),
    ("not_action__does_not_allow_what_is_listed",
     [doc({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})],
     Request("iam:CreateUser"), IMPLICIT_DENY),
    ("deny_with_not_action__denies_everything_else",
     [doc(allow("*"), {"Effect": "Deny", "NotAction": ["ec2:Describe*"], "Resource": "*"})],
     Request("ec2:RunInstances"), EXPLICIT_DENY),
    ("wildcard_in_the_middle_of_an_action__matches",
     [doc(allow("ec2:Describe*Groups"))], Request("ec2:DescribeSecurityGroups"), ALLOW),
    ("wildcard_in_the_middle_of_an_action__does_not_match_other_actions",
     [doc(allow("ec2:Describe*Groups"))], Request("ec2:DescribeInstances"), IMPLICIT_DENY),
    ("question_mark_is_one_character",
     [doc(allow("ec2:RunInstance?"))], Request("ec2:RunInstances"), ALLOW),
    ("actions_match_case_insensitively",
     [doc(allow("EC2:runinstances"))], Request("ec2:RunInstances"), ALLOW),
    ("resource_arn_wildcard__matches",
     [doc(allow("iam:PassRole", "arn:aws:iam::123456789012:role/ecs*"))],
     Request("iam:PassRole", ROLE), ALLOW),
    ("resource_arn_of_another_role__does_not_match",
     [doc(allow("iam:PassRole", "arn:aws:iam::123456789012:role/other"))],
     Request("iam:PassRole", ROLE), IMPLICIT_DENY),
    ("not_resource__excludes_the_listed_resource",
     [doc({"Effect": "Allow", "Action": "iam:PassRole", "NotResource": ROLE})],
     Request("iam:PassRole", ROLE), IMPLICIT_DENY),
    ("string_equals__matching_region",
     [doc(allow("ec2:*", Condition={"StringEquals": {"ec2:Region": "us-west-2"}}))],
     Request("ec2:RunInstances", context=REGION("us-west-2")), ALLOW),
    ("string_equals__other_region",
     [doc(allow("ec2:*", Condition={"StringEquals": {"ec2:Region": "us-west-2"}}))],
     Request("ec2:RunInstances", context=REGION("eu-west-1")), IMPLICIT_DENY),
    ("string_equals__missing_key__does_not_match",
     [doc(allow("*", Condition={"StringEquals": {"ec2:Region": "us-west-2"}}))],
     Request("iam:ListInstanceProfiles", context={"aws:RequestedRegion": "us-east-1"}),
     IMPLICIT_DENY),
    ("string_equals_if_exists__missing_key__matches",
     [doc(allow("*", Condition={"StringEqualsIfExists": {"ec2:Region": "us-west-2"}}))],
     Request("iam:ListInstanceProfiles"), ALLOW),
    ("string_equals_if_exists__present_key_must_match",
     [doc(allow("*", Condition={"StringEqualsIfExists": {"ec2:Region": "us-west-2"}}))],
     Request("ec2:RunInstances", context=REGION("eu-west-1")), IMPLICIT_DENY),
    ("string_not_equals__missing_key__matches_so_the_deny_applies",
     [doc(allow("*"), deny("*", Condition={"StringNotEquals": {"aws:RequestedRegion":
                                                              "us-west-2"}}))],
     Request("iam:ListInstanceProfiles"), EXPLICIT_DENY),
    ("deny_outside_a_region__spares_that_region",
     [doc(allow("*"), deny("ec2:*", Condition={"StringNotEquals": {"ec2:Region":
                                                                  ["us-west-2", "us-east-1"]}}))],
     Request("ec2:RunInstances", context=REGION("us-east-1")), ALLOW),
    ("deny_outside_a_region__denies_other_regions",
     [doc(allow("*"), deny("ec2:*", Condition={"StringNotEquals": {"ec2:Region":
                                                                  ["us-west-2", "us-east-1"]}}))],
     Request("ec2:RunInstances", context=REGION("eu-west-1")), EXPLICIT_DENY),
    ("string_like__wildcard_value",
     [doc(allow("ec2:*", Condition={"StringLike": {"aws:RequestedRegion": "eu-*"}}))],
     Request("ec2:RunInstances", context=REGION("eu-west-1")), ALLOW),
    ("string_not_like__excludes_the_pattern",
     [doc(allow("ec2:*", Condition={"StringNotLike": {"aws:RequestedRegion": "eu-*"}}))],
     Request("ec2:RunInstances", context=REGION("eu-west-1")), IMPLICIT_DENY),
    ("condition_keys_match_case_insensitively",
     [doc(allow("ec2:*", Condition={"StringEquals": {"EC2:REGION": "us-west-2"}}))],
     Request("ec2:RunInstances", context=REGION("us-west-2")), ALLOW),
    ("every_key_of_a_condition_must_hold",
     [doc(allow("ec2:*", Condition={"StringEquals": {"ec2:Region": "us-west-2",
                                                      "aws:RequestedRegion": "eu-west-1"}}))],
     Request("ec2:RunInstances", context=REGION("us-west-2")), IMPLICIT_DENY),
    ("passed_to_service__ec2",
     [doc(allow("iam:PassRole", ROLE,
                Condition={"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}))],
     Request("iam:PassRole", ROLE, {"iam:PassedToService": "ec2.amazonaws.com"}), ALLOW),
    ("passed_to_service__lambda_is_not_ec2",
     [doc(allow("iam:PassRole", ROLE,
                Condition={"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}))],
     Request("iam:PassRole", ROLE, {"iam:PassedToService": "lambda.amazonaws.com"}),
     IMPLICIT_DENY),
    ("arn_like__policy_arn",
     [doc(allow("iam:AttachUserPolicy",
                Condition={"ArnLike": {"iam:PolicyARN": "arn:aws:iam::*:policy/dockercloud-*"}}))],
     Request("iam:AttachUserPolicy", context={
         "iam:PolicyARN": "arn:aws:iam::123456789012:policy/dockercloud-policy"}), ALLOW),
    ("arn_equals__other_policy",
     [doc(allow("iam:AttachUserPolicy",
                Condition={"ArnEquals": {"iam:PolicyARN":
                                         "arn:aws:iam::123456789012:policy/dockercloud-policy"}}))],
     Request("iam:AttachUserPolicy", context={
         "iam:PolicyARN": "arn:aws:iam::123456789012:policy/AdministratorAccess"}),
     IMPLICIT_DENY),
    ("bool__false_matches_false",
     [doc(allow("*"), deny("*", Condition={"Bool": {"aws:SecureTransport": "false"}}))],
     Request("s3:GetObject", context={"aws:SecureTransport": "false"}), EXPLICIT_DENY),
    ("bool__true_request_is_not_denied",
     [doc(allow("*"), deny("*", Condition={"Bool": {"aws:SecureTransport": False}}))],
     Request("s3:GetObject", context={"aws:SecureTransport": "true"}), ALLOW),
    ("bool_if_exists__missing_key__the_deny_applies",
     [doc(allow("*"), deny("*", Condition={"BoolIfExists": {"aws:MultiFactorAuthPresent":
                                                           "false"}}))],
     Request("ec2:RunInstances"), EXPLICIT_DENY),
    ("null_true__matches_a_missing_key",
     [doc(allow("*", Condition={"Null": {"ec2:Region": "true"}}))],
     Request("iam:ListInstanceProfiles"), ALLOW),
    ("for_any_value__one_of_the_context_values",
     [doc(allow("*", Condition={"ForAnyValue:StringEquals": {"aws:TagKeys": ["team"]}}))],
     Request("ec2:CreateTags", context={"aws:TagKeys": ["owner", "team"]}), ALLOW),
    ("for_all_values__every_context_value",
     [doc(allow("*", Condition={"ForAllValues:StringEquals": {"aws:TagKeys": ["team"]}}))],
     Request("ec2:CreateTags", context={"aws:TagKeys": ["owner", "team"]}), IMPLICIT_DENY),
    ("unmodelled_operator__never_grants",
     [doc(allow("*", Condition={"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}))],
     Request("ec2:RunInstances"), IMPLICIT_DENY),
    ("unmodelled_operator__always_denies",
     [doc(allow("*"), deny("*", Condition={"DateGreaterThan": {"aws:CurrentTime": "2999-01-01"}}))],
     Request("ec2:RunInstances"), EXPLICIT_DENY),
    ("the_pages_one_statement_variant__never_allows_list_instance_profiles",
     [doc(allow(["ec2:*", "iam:ListInstanceProfiles"],
                Condition={"StringEquals": {"ec2:Region": "us-west-2"}}))],
     Request("iam:ListInstanceProfiles", context={"aws:RequestedRegion": "us-east-1"}),
     IMPLICIT_DENY),
    ("the_runbooks_region_limited_document__allows_list_instance_profiles",
     [policy_document("us-west-2")],
     Request("iam:ListInstanceProfiles", context={"aws:RequestedRegion": "us-east-1"}), ALLOW),
]


@pytest.mark.parametrize("policies, request_, expected", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_evaluate__follows_aws_evaluation_logic(policies, request_, expected):
    decision = evaluate({f"p{i}": d for i, d in enumerate(policies, 1)}, request_)
    assert decision.decision == expected, decision.reason


def test_evaluate__explicit_deny__names_the_denying_statement():
    decision = evaluate({"base": doc(allow("*")), "guard": doc(deny("ec2:*") | {"Sid": "NoEc2"})},
                        Request("ec2:RunInstances"))
    assert decision.matched == ("guard#NoEc2",)
    assert decision.reason == "explicitly denied by guard#NoEc2"


def test_evaluate__implicit_deny__says_which_condition_failed():
    decision = evaluate({"limited": policy_document("us-west-2")},
                        Request("ec2:RunInstances", context=REGION("eu-west-1")))
    assert decision.reason == ("implicitly denied: limited#1: StringEquals ec2:Region "
                               "['us-west-2'] does not hold for ec2:Region=eu-west-1")


def test_evaluate__accepts_json_text_documents():
    assert evaluate({"p": '{"Version": "2012-10-17", "Statement": {"Effect": "Allow", '
                          '"Action": "ec2:*", "Resource": "*"}}'},
                    Request("ec2:RunInstances")).allowed


@pytest.mark.parametrize("pattern, value, expected", [
    ("arn:aws:iam::*:role/*", ROLE, True),
    ("arn:aws:iam::*:role/*", "arn:aws:iam::123456789012:user/x", False),
    ("arn:aws:iam::111111111111:role/*", ROLE, False),
    ("arn:aws:ec2:us-west-2:*:instance/*", "arn:aws:ec2:us-west-2:123456789012:instance/*", True),
    ("not-an-arn", ROLE, False),
])
def test_arn_matches__compares_the_six_parts_each_with_wildcards(pattern, value, expected):
    assert arn_matches(pattern, value) is expected


def test_action_matches__a_wildcard_does_not_cross_the_service_prefix_literally():
    assert action_matches("ec2:*", "ec2:RunInstances")
    assert not action_matches("ec2:*", "iam:ListInstanceProfiles")
