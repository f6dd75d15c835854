"""Key readiness: retry what a propagating key gets, give up at the bound, refuse the rest."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from runbook.errors import StepError
from runbook.readiness import wait_for_key

ARN = "arn:aws:iam::123456789012:user/dockercloud-user"
IDENTITY = {"Arn": ARN, "Account": "123456789012", "UserId": "AIDAEXAMPLEEXAMPLE1"}


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def sts():
    client = boto3.client("sts", region_name="us-east-1", aws_access_key_id="x",
                          aws_secret_access_key="y")
    with Stubber(client) as stub:
        yield client, stub


def test_wait_for_key__retries_invalid_client_token_id_with_backoff_until_it_works(sts):
    client, stub = sts
    for _ in range(3):
        stub.add_client_error("get_caller_identity", "InvalidClientTokenId", http_status_code=403)
    stub.add_response("get_caller_identity", IDENTITY)
    clock = FakeClock()
    ready = wait_for_key(client, ARN, sleep=clock.sleep, clock=clock)
    assert (ready.attempts, ready.arn) == (4, ARN)
    assert clock.sleeps == [0.5, 1.0, 2.0]
    assert ready.seconds == 3.5


def test_wait_for_key__gives_up_after_the_bound_with_key_not_ready(sts):
    client, stub = sts
    for _ in range(30):
        stub.add_client_error("get_caller_identity", "InvalidClientTokenId", http_status_code=403)
    clock = FakeClock()
    with pytest.raises(StepError) as caught:
        wait_for_key(client, ARN, timeout=10, sleep=clock.sleep, clock=clock)
    assert caught.value.code == "KeyNotReady"
    assert clock.now <= 10


def test_wait_for_key__access_denied__is_not_retried(sts):
    client, stub = sts
    stub.add_client_error("get_caller_identity", "AccessDenied", http_status_code=403)
    with pytest.raises(StepError) as caught:
        wait_for_key(client, ARN, sleep=pytest.fail)
    assert caught.value.code == "AccessDenied"


def test_wait_for_key__a_key_of_another_user__is_refused_as_wrong_owner(sts):
    client, stub = sts
    stub.add_response("get_caller_identity", dict(IDENTITY, Arn=ARN + "-other"))
    with pytest.raises(StepError) as caught:
        wait_for_key(client, ARN)
    assert caught.value.code == "WrongKeyOwner"
