"""Parameter rules: each bad value is refused with its name, its value and the rule."""

from __future__ import annotations

import pytest

from runbook import params as P
from runbook.errors import ParameterError


def refused(model, **values) -> str:
    with pytest.raises(ParameterError) as caught:
        model.from_values(values)
    return str(caught.value)


def test_defaults_are_the_procedures_names():
    p = P.CreateUserParams.from_values({})
    assert (p.user_name, p.credentials_profile, p.target, p.region) == (
        "dockercloud-user", "dockercloud", "sandbox", "us-east-1")
    assert P.PolicyParams.from_values({}).policy_name == "dockercloud-policy"


@pytest.mark.parametrize("value, says", [
    ("dockercloud user", "' ' at position 11 is not allowed"),
    ("", "is empty"),
    ("u" * 65, "is 65 characters long"),
    ("dockercloud-üser", "'ü' at position 12 is not allowed"),
    ("user/name", "'/' at position 4 is not allowed"),
])
def test_user_name__is_refused__when_it_breaks_iams_rule(value, says):
    message = refused(P.CreateUserParams, user_name=value)
    assert f"user_name={value!r}" in message
    assert says in message
    assert "1-64 characters of A-Z a-z 0-9 and _+=,.@-" in message


def test_user_name__of_64_allowed_characters__is_accepted():
    name = "a_b+c=d,e.f@g-" + "x" * 50
    assert P.CreateUserParams.from_values({"user_name": name}).user_name == name


def test_policy_name__may_be_128_characters_but_not_129():
    assert P.PolicyParams.from_values({"policy_name": "p" * 128})
    assert "is 129 characters long" in refused(P.PolicyParams, policy_name="p" * 129)


@pytest.mark.parametrize("value, says", [
    ("us-east-1 ", "leading or trailing whitespace"),
    ("us-eats-1", "did you mean 'us-east-1'?"),
    ("mars-north-1", "is not an EC2 region in botocore's region data"),
    (1, "must be a region name string"),
])
def test_region__is_checked_against_botocores_region_data(value, says):
    message = refused(P.CreateUserParams, region=value)
    assert says in message and "region=" in message


def test_known_regions__are_the_ec2_regions_boto3_lists_in_every_partition():
    import boto3

    session = boto3.session.Session()
    listed = {r for partition in session.get_available_partitions()
              for r in session.get_available_regions("ec2", partition_name=partition)}
    assert P.known_regions() == tuple(sorted(listed))
    assert {"us-east-1", "cn-north-1", "us-gov-west-1"} <= listed


def test_limit_region__uses_the_same_rule_as_region():
    assert "limit_region='us-west-9'" in refused(P.PolicyParams, limit_region="us-west-9")
    assert P.PolicyParams.from_values({"limit_region": "us-west-2"}).limit_region == "us-west-2"


def test_target__must_be_sandbox_or_aws():
    assert "must be one of 'sandbox'" in refused(P.CreateUserParams, target="prod")


@pytest.mark.parametrize("value", ["true", 1, None])
def test_dry_run__must_be_a_boolean(value):
    assert "dry_run=" in refused(P.CreateUserParams, dry_run=value)


@pytest.mark.parametrize("value, says", [
    ("arn:aws:iam::123456789012:user/bob", "must be an IAM role ARN"),
    ("arn:aws:iam::12345678901:role/x", "must be an IAM role ARN"),
    ("arn:aws:iam::123456789012:role/*", "no wildcards"),
    ("ecsInstanceRole", "must be an IAM role ARN"),
])
def test_pass_role_arn__is_parsed_not_guessed(value, says):
    message = refused(P.PolicyParams, pass_role_arn=value)
    assert says in message and "pass_role_arn=" in message


def test_pass_role_arn__with_a_path__is_split_into_its_parts():
    parts = P.parse_role_arn("arn:aws:iam::123456789012:role/service/ecsInstanceRole")
    assert parts == {"partition": "aws", "account": "123456789012", "path": "/service/",
                     "name": "ecsInstanceRole"}


def test_account_id__as_twelve_digit_number__is_restored_to_a_string():
    assert P.CreateUserParams.from_values({"account_id": 123456789012}).account_id == "123456789012"


def test_account_id__that_lost_its_leading_zero__is_refused_with_the_quoting_hint():
    message = refused(P.CreateUserParams, account_id=12345678901)
    assert "account_id=12345678901" in message and "drops leading zeros" in message


@pytest.mark.parametrize("value", ["12345678901", "1234567890123", "12345678901a", ""])
def test_account_id__must_be_exactly_twelve_digits(value):
    assert "must be exactly 12 digits" in refused(P.CreateUserParams, account_id=value)


def test_aws_profile__with_the_sandbox_target__is_refused():
    assert "only used with target 'aws'" in refused(P.CreateUserParams, aws_profile="prod")


def test_aws_profile__that_does_not_exist__is_refused_without_an_aws_call(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    message = refused(P.CreateUserParams, target="aws", aws_profile="nope")
    assert "is not a profile in your AWS config or credentials files" in message


def test_credentials_file__in_a_missing_directory__is_refused(tmp_path):
    message = refused(P.CreateUserParams, credentials_file=str(tmp_path / "no" / "credentials"))
    assert "does not exist" in message


def test_csv_path__must_name_a_csv_file(tmp_path):
    assert "must name a .csv file" in refused(P.CreateUserParams, csv_path=str(tmp_path / "k.txt"))


def test_unknown_parameter__is_refused_with_a_suggestion():
    with pytest.raises(ParameterError) as caught:
        P.validate_run({"usr_name": "x"}, ["01_create_user"])
    assert "did you mean 'user_name'?" in str(caught.value)


def test_validate_run__reports_every_bad_parameter_once():
    with pytest.raises(ParameterError) as caught:
        P.validate_run({"user_name": "a b", "region": "nowhere", "policy_name": ""},
                       ["01_create_user", "02_create_policy", "03_attach_policy"])
    names = [name for name, _, _ in caught.value.problems]
    assert sorted(names) == ["policy_name", "region", "user_name"]


def test_check__gives_the_forms_the_same_words_as_validation():
    assert P.check("user_name", "a b") in refused(P.CreateUserParams, user_name="a b")
    assert P.check("user_name", "ok") is None
