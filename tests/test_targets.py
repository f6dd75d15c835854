"""Targets and sessions: clients that offer only the operations a section asks for."""

from __future__ import annotations

import hashlib
import json

import botocore.session

from runbook import targets


def _referenced(shape: dict) -> list[str]:
    names = [shape[k]["shape"] for k in ("member", "key", "value") if k in shape]
    return names + [m["shape"] for m in shape.get("members", {}).values()]


def test_operations_session__client_offers_only_those_operations_and_every_shape_they_reach():
    session = targets.new_session({"ec2": frozenset({"RunInstances", "DescribeRegions"})},
                                  aws_access_key_id="AKIAEXAMPLEEXAMPLE00",
                                  aws_secret_access_key="not-a-secret", region_name="us-east-1")
    ec2 = session.client("ec2", region_name="eu-west-1")
    assert hasattr(ec2, "run_instances") and hasattr(ec2, "describe_regions")
    assert not hasattr(ec2, "describe_instances")

    model = ec2.meta.service_model._service_description
    full = botocore.session.Session().get_component("data_loader").load_service_model(
        "ec2", "service-2")
    assert set(model["operations"]) == {"RunInstances", "DescribeRegions"}
    assert len(model["shapes"]) < len(full["shapes"]) / 10
    dangling = {ref for shape in model["shapes"].values() for ref in _referenced(shape)
                if ref not in model["shapes"]}
    assert dangling == set()
    assert all(model["shapes"][n] == targets._undocumented(full["shapes"][n])
               for n in model["shapes"])
    assert "documentation" not in json.dumps(model)  # docs are URLs the secret scan trips on
    # The request still serialises every input member RunInstances has.
    assert "ImageId" in ec2.meta.service_model.operation_model("RunInstances").input_shape.members


def test_operations_session__keeps_a_services_modelled_exceptions():
    session = targets.new_session({"iam": frozenset({"GetUser"})},
                                  aws_access_key_id="AKIAEXAMPLEEXAMPLE00",
                                  aws_secret_access_key="not-a-secret", region_name="us-east-1")
    iam = session.client("iam")
    assert iam.exceptions.NoSuchEntityException.__name__ == "NoSuchEntityException"
    assert iam.exceptions.EntityAlreadyExistsException  # not reached by GetUser, still kept


def test_operator_sessions_ec2_operations__are_exactly_what_the_operator_policy_grants_of_ec2():
    from runbook import operator

    granted = {action.split(":", 1)[1]
               for statement in operator.operator_policy()["Statement"]
               for action in statement["Action"] if action.startswith("ec2:")}
    assert granted == set(targets.OPERATOR_OPERATIONS["ec2"])


STS_KEEP = frozenset({"GetCallerIdentity"})


def kept_sts_model(home, monkeypatch):
    """STS cut down to GetCallerIdentity, made in ``home``: (the model, its kept file)."""
    from runbook import params

    monkeypatch.setenv("RUNBOOK_HOME", str(home))
    made = targets.pruned_model(params.data_loader(), "sts", None, STS_KEEP)
    [kept] = (home / "cache" / "models").iterdir()
    return made, kept


def sts_model_again():
    from runbook import params

    return targets.pruned_model(params.data_loader(), "sts", None, STS_KEEP)


def test_pruned_model__is_kept_in_the_runbook_home_and_read_back_from_there(tmp_path,
                                                                          monkeypatch):
    made, kept = kept_sts_model(tmp_path, monkeypatch)
    assert set(made["operations"]) == set(STS_KEEP)
    digest, body = kept.read_text().split("\n", 1)
    assert json.loads(body) == made and digest == hashlib.sha256(body.encode()).hexdigest()
    body = json.dumps({**made, "kept": "read back"})
    kept.write_text(hashlib.sha256(body.encode()).hexdigest() + "\n" + body)
    assert sts_model_again()["kept"] == "read back"


def test_pruned_model__a_kept_model_that_cannot_be_read__is_made_again(tmp_path, monkeypatch):
    made, kept = kept_sts_model(tmp_path, monkeypatch)
    good = kept.read_text()
    body = json.dumps({"operations": {"GetCallerIdentity": {}}, "shapes": {}})
    for damage in ("{not json", body, good[:-10], good[:-10] + "x" * 10,
                   hashlib.sha256(b"[]").hexdigest() + "\n[]"):
        kept.write_text(damage)
        assert sts_model_again() == made
        assert kept.read_text() == good


def test_pruned_model__a_kept_model_that_is_not_a_plain_file__is_neither_followed_nor_read(
        tmp_path, monkeypatch):
    import os

    made, kept = kept_sts_model(tmp_path / "home", monkeypatch)
    good = kept.read_text()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text(good)  # a valid kept model, but not in its place
    kept.unlink()
    kept.symlink_to(elsewhere)
    assert sts_model_again() == made
    assert not kept.is_symlink() and kept.read_text() == good  # replaced, not written through
    assert elsewhere.read_text() == good
    kept.unlink()
    os.mkfifo(kept)  # would block a plain open()
    assert sts_model_again() == made
    assert kept.read_text() == good
    kept.unlink()
    kept.mkdir()  # cannot be replaced: the model is made each time, and nothing is left over
    assert sts_model_again() == made
    assert [p.name for p in kept.parent.iterdir()] == [kept.name]


def test_pruned_model__a_new_model_file_for_the_service__is_read_instead_of_the_kept_one(
        tmp_path, monkeypatch):
    """A model in ~/.aws/models (or a botocore upgrade) must not be hidden by a kept model."""
    import botocore.loaders

    monkeypatch.setenv("RUNBOOK_HOME", str(tmp_path / "home"))
    keep = frozenset({"GetCallerIdentity"})
    loader = botocore.loaders.create_loader()
    version = loader.determine_latest_version("sts", "service-2")
    first = targets.pruned_model(loader, "sts", None, keep)
    model = loader.load_service_model("sts", "service-2")
    override = dict(model, metadata=dict(model["metadata"], serviceFullName="override"))
    folder = tmp_path / "models" / "sts" / version
    folder.mkdir(parents=True)
    (folder / "service-2.json").write_text(json.dumps(override))
    loader = botocore.loaders.create_loader()
    loader.search_paths.insert(0, str(tmp_path / "models"))
    second = targets.pruned_model(loader, "sts", None, keep)
    assert first["metadata"]["serviceFullName"] != "override"
    assert second["metadata"]["serviceFullName"] == "override"
    assert len(list((tmp_path / "home" / "cache" / "models").iterdir())) == 2
