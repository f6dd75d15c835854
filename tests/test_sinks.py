"""Credential sinks: the user's own files are edited, never clobbered, and never quoted."""

from __future__ import annotations

import os
import stat

import pytest

from runbook.errors import StepError
from runbook.secrets import Credentials
from runbook.sinks import ConsoleCsv, SharedCredentialsProfile

# AWS's documentation example keys, of no account; put together here so that no
# file of the project holds a key-shaped pair (the repository's secret scan).
PAIR = Credentials("AKIA" + "IOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY")
OTHER = Credentials("AKIA" + "I44QH8DHBEXAMPLE", "je7MtGbClwBF/2Zp9Utk/" + "h3yCo8nvbEXAMPLEKEY")


def test_profile_write__keeps_comments_and_other_profiles_as_they_were(tmp_path):
    path = tmp_path / "credentials"
    path.write_text("# my accounts\n[admin]\n# the admin key\naws_access_key_id = A\n"
                    "aws_secret_access_key = B\nregion = eu-west-1\n\n# ci below\n[ci]\n"
                    "aws_access_key_id = C\naws_secret_access_key = D\n")
    SharedCredentialsProfile(path, "dockercloud").write(PAIR)
    assert path.read_text() == (
        "# my accounts\n[admin]\n# the admin key\naws_access_key_id = A\n"
        "aws_secret_access_key = B\nregion = eu-west-1\n\n# ci below\n[ci]\n"
        "aws_access_key_id = C\naws_secret_access_key = D\n\n[dockercloud]\n"
        f"aws_access_key_id = {PAIR.access_key_id}\n"
        f"aws_secret_access_key = {PAIR.secret_access_key}\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_profile_write__replaces_the_key_lines_and_drops_a_stale_session_token(tmp_path):
    path = tmp_path / "credentials"
    path.write_text("[dockercloud]\n# keep me\naws_access_key_id = OLD\nregion = us-west-2\n"
                    "aws_secret_access_key = OLD\naws_session_token = T1\n  T2\n[next]\nx = 1\n")
    SharedCredentialsProfile(path, "dockercloud").write(PAIR)
    assert path.read_text() == (
        f"[dockercloud]\n# keep me\nregion = us-west-2\naws_access_key_id = {PAIR.access_key_id}\n"
        f"aws_secret_access_key = {PAIR.secret_access_key}\n[next]\nx = 1\n")
    assert SharedCredentialsProfile(path, "dockercloud").read() == PAIR


def test_profile_remove__takes_only_that_profile_and_keeps_the_next_ones_comment(tmp_path):
    path = tmp_path / "credentials"
    sink = SharedCredentialsProfile(path, "dockercloud")
    path.write_text("[a]\nx = 1\n\n")
    sink.write(PAIR)
    with open(path, "a") as handle:
        handle.write("\n# the ci profile\n[ci]\ny = 2\n")
    assert sink.remove() is True
    assert path.read_text() == "[a]\nx = 1\n\n# the ci profile\n[ci]\ny = 2\n"
    assert sink.remove() is False


def test_profile_write__through_a_symlink__replaces_the_target_and_keeps_the_link(tmp_path):
    target = tmp_path / "dotfiles-credentials"
    target.write_text("[a]\nx = 1\n")
    link = tmp_path / "credentials"
    link.symlink_to(target)
    SharedCredentialsProfile(link, "dockercloud").write(PAIR)
    assert link.is_symlink()
    assert SharedCredentialsProfile(target, "dockercloud").read() == PAIR


def test_profile__unparseable_file__is_refused_by_line_number_without_quoting_a_secret(tmp_path):
    path = tmp_path / "credentials"
    text = f"[other]\naws_access_key_id = {OTHER.access_key_id}\n{OTHER.secret_access_key}\n"
    path.write_text(text)
    for use in (lambda s: s.read(), lambda s: s.write(PAIR), lambda s: s.remove()):
        with pytest.raises(StepError) as caught:
            use(SharedCredentialsProfile(path, "dockercloud"))
        message = str(caught.value)
        assert "line(s) 3 are not 'name = value' lines" in message
        assert OTHER.secret_access_key not in message and OTHER.access_key_id not in message
    assert path.read_text() == text  # left alone


def test_profile__an_aws_config_file__is_refused_and_left_alone(tmp_path):
    path = tmp_path / "config"
    path.write_text("[default]\nregion = us-east-1\n\n[profile admin]\nregion = eu-west-1\n")
    with pytest.raises(StepError) as caught:
        SharedCredentialsProfile(path, "dockercloud").write(PAIR)
    assert "looks like an AWS config file" in str(caught.value)
    assert "[profile admin]" in path.read_text() and "dockercloud" not in path.read_text()


def test_console_csv__refuses_to_replace_a_file_that_is_not_a_credentials_csv(tmp_path):
    path = tmp_path / "important.csv"
    path.write_text("date,amount\n2026-01-01,3\n")
    sink = ConsoleCsv(path, "dockercloud-user", "123456789012")
    assert "is not a credentials CSV" in sink.foreign()
    assert sink.read() is None
    with pytest.raises(StepError):
        sink.write(PAIR)
    assert path.read_text() == "date,amount\n2026-01-01,3\n"


def test_console_csv__replaces_its_own_earlier_file(tmp_path):
    sink = ConsoleCsv(tmp_path / "key.csv", "dockercloud-user", "123456789012")
    sink.write(OTHER)
    assert sink.foreign() is None
    sink.write(PAIR)
    assert sink.read() == PAIR
    assert stat.S_IMODE(os.stat(tmp_path / "key.csv").st_mode) == 0o600


def _parsed(path):
    import configparser

    parser = configparser.RawConfigParser()
    parser.read_string(path.read_text())
    return {name: dict(parser[name]) for name in parser.sections()}


@pytest.mark.parametrize("layout", [
    "[dockercloud]\n    region = us-west-2\n    output = json\n",           # indented options
    "[dockercloud]\n  aws_access_key_id = OLD\n  aws_secret_access_key = OLD\n  region = "
    "us-west-2\n  output = json\n",                                           # indented keys
    "[dockercloud]\naws_session_token: IQoJb3JpZ2luX2Vj==\nregion: us-west-2\n"
    "output = json\n",                                                         # ':' with '='
    "[dockercloud]\nregion = us-west-2\noutput = json\naws_access_key_id = OLD\n"
    "aws_secret_access_key = OLD\n  continued\n\n  still\n",                # continuations
], ids=["indented-options", "indented-keys", "colon-token", "continuation-lines"])
def test_profile_write__any_layout_configparser_reads__keeps_its_settings_and_the_new_key_whole(
        layout, tmp_path):
    path = tmp_path / "credentials"
    path.write_text("[other]\nx = 1\n\n" + layout)
    sink = SharedCredentialsProfile(path, "dockercloud")
    sink.write(PAIR)
    assert sink.read() == PAIR
    profile = _parsed(path)["dockercloud"]
    assert profile == {"region": "us-west-2", "output": "json",
                       "aws_access_key_id": PAIR.access_key_id,
                       "aws_secret_access_key": PAIR.secret_access_key}
    assert _parsed(path)["other"] == {"x": "1"}
    sink.write(OTHER)  # and again, as a rotation does
    assert sink.read() == OTHER and _parsed(path)["dockercloud"]["region"] == "us-west-2"


def test_profile__a_header_with_spaces__is_another_profile_as_the_aws_cli_reads_it(tmp_path):
    path = tmp_path / "credentials"
    path.write_text("[ dockercloud ]\nregion = us-west-2\n")
    sink = SharedCredentialsProfile(path, "dockercloud")
    sink.write(PAIR)
    assert sink.read() == PAIR
    assert _parsed(path)[" dockercloud "] == {"region": "us-west-2"}
    assert sink.remove() is True and sink.read() is None
    assert _parsed(path) == {" dockercloud ": {"region": "us-west-2"}}


def test_profile_write__keeps_crlf_line_endings(tmp_path):
    path = tmp_path / "credentials"
    path.write_bytes(b"# mine\r\n[other]\r\nx = 1\r\n")
    SharedCredentialsProfile(path, "dockercloud").write(PAIR)
    data = path.read_bytes()
    assert data.startswith(b"# mine\r\n[other]\r\nx = 1\r\n")
    assert b"\n" not in data.replace(b"\r\n", b"")


def test_profile__a_byte_order_mark__is_refused_by_name(tmp_path):
    path = tmp_path / "credentials"
    path.write_text("\ufeff[other]\nx = 1\n", encoding="utf-8")
    with pytest.raises(StepError) as caught:
        SharedCredentialsProfile(path, "dockercloud").write(PAIR)
    assert "byte-order mark" in str(caught.value)


def test_profile__a_secret_pasted_as_a_setting_twice__is_not_quoted_even_lower_cased(tmp_path):
    path = tmp_path / "credentials"
    path.write_text(f"[x]\n{OTHER.secret_access_key}=\n{OTHER.secret_access_key}=\n")
    with pytest.raises(StepError) as caught:
        SharedCredentialsProfile(path, "dockercloud").read()
    assert "at line 3" in str(caught.value)
    assert OTHER.secret_access_key.lower() not in str(caught.value).lower()


def test_console_csv__refuses_to_replace_another_users_credentials_csv(tmp_path):
    path = tmp_path / "alice.csv"
    ConsoleCsv(path, "alice", "123456789012").write(OTHER)
    sink = ConsoleCsv(path, "dockercloud-user", "123456789012")
    assert "holds the key of another user (alice)" in sink.foreign()
    with pytest.raises(StepError):
        sink.write(PAIR)
    assert ConsoleCsv(path, "alice", "123456789012").read() == OTHER
