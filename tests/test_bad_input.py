"""Bad input: every bad value exits 2, names its parameter, and no AWS call is made.

Most values go through ``runbook.cli.main`` in-process (fast); a handful go
through a real ``runbook`` subprocess next to a running sandbox, whose moto
log must not grow. "No AWS call" in-process: no run folder, no sandbox
started (no state file), so nothing could have been called.
"""

from __future__ import annotations

import os

import pytest

from conftest import figure
from runbook import cli

ARN = "arn:aws:iam::123456789012:role/"

# (id, argv after "run" (or a whole argv for "sandbox"), the parameter the message names,
#  words of the rule). "FILE:<text>" writes <text> to a params file; "DIR" is a directory.
CASES = [
    ("user-name-space", ["-p", "user_name", "docker cloud"], "user_name", "' ' at position 6"),
    ("user-name-empty", ["-p", "user_name", ""], "user_name", "is empty"),
    ("user-name-65", ["-p", "user_name", "u" * 65], "user_name", "is 65 characters long"),
    ("user-name-umlaut", ["-p", "user_name", "dockercloud-üser"], "user_name", "'ü'"),
    ("user-name-cjk", ["-p", "user_name", "用户"], "user_name", "'用' at position 0"),
    ("user-name-tab", ["-p", "user_name", "docker\tcloud"], "user_name", "'\\t'"),
    ("user-name-slash", ["-p", "user_name", "team/docker"], "user_name", "'/'"),
    ("policy-name-129", ["-p", "policy_name", "p" * 129], "policy_name", "129 characters"),
    ("policy-name-empty", ["-p", "policy_name", ""], "policy_name", "is empty"),
    ("policy-name-space", ["-p", "policy_name", "my policy"], "policy_name", "' '"),
    ("policy-name-accent", ["-p", "policy_name", "pólicy"], "policy_name", "'ó'"),
    ("profile-empty", ["-p", "credentials_profile", ""], "credentials_profile",
     "1-64 characters"),
    ("profile-space", ["-p", "credentials_profile", "my profile"], "credentials_profile", "' '"),
    ("profile-brackets", ["-p", "credentials_profile", "[dockercloud]"], "credentials_profile",
     "'['"),
    ("profile-DEFAULT", ["-p", "credentials_profile", "DEFAULT"], "credentials_profile",
     "'default' is fine"),
    ("region-cn-on-sandbox", ["-p", "region", "cn-north-1"], "region",
     "the sandbox is an account in 'aws'"),
    ("limit-region-other-partition", ["-p", "limit_region", "cn-north-1"], "limit_region",
     "is in the 'aws-cn' partition, but region 'us-east-1' is in 'aws'"),
    ("verify-regions-other-partition", ["-p", "verify_regions", "us-east-1,us-gov-west-1"],
     "verify_regions", "us-gov-west-1 not in the 'aws' partition"),
    ("region-typo", ["-p", "region", "us-eats-1"], "region", "did you mean 'us-east-1'?"),
    ("region-trailing-space", ["-p", "region", "us-east-1 "], "region", "trailing whitespace"),
    ("region-leading-space", ["-p", "region", " us-east-1"], "region", "leading or trailing"),
    ("region-upper", ["-p", "region", "US-EAST-1"], "region", "not an EC2 region"),
    ("region-empty", ["-p", "region", ""], "region", "not an EC2 region"),
    ("limit-region-typo", ["-p", "limit_region", "eu-west-9"], "limit_region",
     "not an EC2 region"),
    ("limit-region-newline", ["-p", "limit_region", "us-west-2\n"], "limit_region",
     "trailing whitespace"),
    ("verify-regions-typo", ["-p", "verify_regions", "us-east-1,eu-wset-1"], "verify_regions",
     "item 2 ('eu-wset-1') is not an EC2 region"),
    ("verify-regions-space", ["-p", "verify_regions", "us-east-1, us-west-2"], "verify_regions",
     "item 2 (' us-west-2') has leading or trailing whitespace"),
    ("verify-regions-twice", ["-p", "verify_regions", "us-east-1,us-east-1"], "verify_regions",
     "names a region twice"),
    ("instance-profile-space", ["-p", "instance_profile", "ecs instance"], "instance_profile",
     "' ' at position 3"),
    ("instance-profile-129", ["-p", "instance_profile", "i" * 129], "instance_profile",
     "is 129 characters long"),
    ("account-11-digits", ["-p", "account_id", "12345678901"], "account_id", "exactly 12 digits"),
    ("account-13-digits", ["-p", "account_id", "1234567890123"], "account_id",
     "exactly 12 digits"),
    ("account-letter", ["-p", "account_id", "01234567890a"], "account_id", "exactly 12 digits"),
    ("account-yaml-hex", ["-f", "FILE:account_id: 0x1CBE991A14\n"], "account_id",
     "exactly 12 digits"),
    ("account-yaml-negative", ["-f", "FILE:account_id: -12345678901\n"], "account_id",
     "arrived as the number -12345678901"),
    ("account-arabic-digits", ["-p", "account_id", "١٢٣٤٥٦٧٨٩٠١٢"], "account_id",
     "exactly 12 digits 0-9"),
    ("account-fullwidth-digits", ["-p", "account_id", "１２３４５６７８９０１２"], "account_id",
     "exactly 12 digits 0-9"),
    ("account-yaml-11-digit-number", ["-f", "FILE:account_id: 12345678901\n"], "account_id",
     "drops leading zeros"),
    ("arn-user-not-role", ["-p", "pass_role_arn", "arn:aws:iam::123456789012:user/bob"],
     "pass_role_arn", "must be an IAM role ARN"),
    ("arn-11-digit-account", ["-p", "pass_role_arn", "arn:aws:iam::12345678901:role/x"],
     "pass_role_arn", "must be an IAM role ARN"),
    ("arn-wildcard-name", ["-p", "pass_role_arn", ARN + "*"], "pass_role_arn", "no wildcards"),
    ("arn-wildcard-path", ["-p", "pass_role_arn", ARN + "*/ecsInstanceRole"], "pass_role_arn",
     "no wildcards"),
    ("arn-with-region", ["-p", "pass_role_arn", "arn:aws:iam:us-east-1:123456789012:role/x"],
     "pass_role_arn", "must be an IAM role ARN"),
    ("arn-fullwidth-account", ["-p", "pass_role_arn", "arn:aws:iam::１２３４５６７８９０１２:role/x"],
     "pass_role_arn", "must be an IAM role ARN"),
    ("arn-path-too-long", ["-p", "pass_role_arn", ARN + "p" * 600 + "/x"], "pass_role_arn",
     "IAM allows at most 512"),
    ("arn-other-partition", ["-p", "pass_role_arn", "arn:aws-cn:iam::123456789012:role/x"],
     "pass_role_arn", "is a role in the 'aws-cn' partition"),
    ("arn-bare-name", ["-p", "pass_role_arn", "ecsInstanceRole"], "pass_role_arn",
     "must be an IAM role ARN"),
    ("arn-trailing-space", ["-p", "pass_role_arn", ARN + "x "], "pass_role_arn",
     "must be an IAM role ARN"),
    ("arn-bad-partition", ["-p", "pass_role_arn", "arn:aws-mars:iam::123456789012:role/x"],
     "pass_role_arn", "must be an IAM role ARN"),
    ("aws-profile-missing", ["--target", "aws", "--aws-profile", "no-such-profile"],
     "aws_profile", "is not a profile in your AWS config or credentials files"),
    ("aws-profile-on-sandbox", ["--aws-profile", "prod"], "aws_profile",
     "only used with target 'aws'"),
    ("target-unknown", ["--target", "prod"], "target", "must be one of 'sandbox'"),
    ("dry-run-not-bool", ["-p", "dry_run", "maybe"], "dry_run", "must be true or false"),
    ("credentials-file-missing-dir", ["-p", "credentials_file", "/nonexistent/dir/credentials"],
     "credentials_file", "does not exist"),
    ("credentials-file-is-dir", ["-p", "credentials_file", "DIR"], "credentials_file",
     "is a directory"),
    ("credentials-file-empty", ["-p", "credentials_file", ""], "credentials_file",
     "is empty; name a file"),
    ("credentials-file-nul", ["-f", 'FILE:credentials_file: "/tmp/a\\0b"\n'], "credentials_file",
     "contains a control character"),
    ("credentials-file-fifo", ["-p", "credentials_file", "FIFO"], "credentials_file",
     "is not a regular file (a device, FIFO or socket)"),
    ("credentials-file-device", ["-p", "credentials_file", "/dev/null"], "credentials_file",
     "is under /dev, /proc or /sys"),
    ("credentials-file-stdout", ["-p", "credentials_file", "/dev/stdout"], "credentials_file",
     "is under /dev, /proc or /sys"),
    ("credentials-file-proc-fd", ["-p", "credentials_file", "/proc/self/fd/1"],
     "credentials_file", "is under /dev, /proc or /sys"),
    ("credentials-file-name-too-long", ["-p", "credentials_file", "DIR/" + "c" * 300],
     "credentials_file", "has a file name of 300 bytes; at most 255"),
    ("credentials-file-trailing-slash", ["-p", "credentials_file", "DIR/newdir/"],
     "credentials_file", "ends with '/'"),
    ("credentials-file-unknown-user", ["-p", "credentials_file", "~nosuchuser-xq/creds"],
     "credentials_file", "'~user' for a user this machine does not know"),
    ("csv-same-file-another-spelling", ["-p", "csv_path", "DIR/k.csv", "-p", "credentials_file",
                                        "DIR/sub/../k.csv"], "csv_path",
     "must not be the same file as credentials_file"),
    ("csv-only-extension", ["-p", "csv_path", "DIR/.csv"], "csv_path", "must name a .csv file"),
    ("csv-not-csv", ["-p", "csv_path", "DIR/key.txt"], "csv_path", "must name a .csv file"),
    ("unknown-parameter", ["-p", "usr_name", "x"], "usr_name", "did you mean 'user_name'?"),
    ("another-commands-parameter", ["-p", "confirm", "true"], "confirm",
     "is not used here, only by unlink"),
    ("yaml-missing", ["-f", "/nonexistent/params.yaml"], "-f", "cannot read the params file"),
    ("yaml-is-dir", ["-f", "DIR"], "-f", "cannot read the params file"),
    ("yaml-not-utf8", ["-f", "BYTES:\xff\xfe user_name: x"], "-f",
     "cannot read the params file"),
    ("yaml-syntax", ["-f", "FILE:user_name: [unclosed\n"], "-f", "is not valid YAML at line"),
    ("yaml-list-at-top", ["-f", "FILE:- user_name: x\n"], "-f",
     "must hold a mapping of parameter names to values at the top, not a list"),
    ("yaml-scalar-at-top", ["-f", "FILE:dockercloud-user\n"], "-f", "not a str"),
    ("yaml-unknown-key", ["-f", "FILE:usr_name: x\n"], "usr_name",
     "is not a parameter of this runbook"),
    ("yaml-alias", ["-f", "FILE:a: &big [x, x]\nuser_name: *big\n"], "-f", "uses a YAML alias"),
    ("yaml-duplicate-key", ["-f", "FILE:user_name: a\nuser_name: b\n"], "-f",
     "'user_name' is given twice"),
    ("yaml-too-large", ["-f", "FILE:#" + "x" * 70000 + "\n"], "-f", "is larger than 64 KiB"),
    ("yaml-endless", ["-f", "/dev/zero"], "-f", "is larger than 64 KiB"),
    ("yaml-deeply-nested", ["-f", "FILE:user_name: " + "[" * 600 + "]" * 600 + "\n"], "-f",
     "nests too deeply"),
    ("yaml-bool-for-name", ["-f", "FILE:user_name: yes\n"], "user_name",
     "booleans: quote the value"),
    ("param-twice", ["-p", "user_name", "a", "-p", "user_name", "b"], "user_name",
     "is given twice with -p"),
    ("yaml-number-key", ["-f", "FILE:1: x\n"], "-f", "parameter names must be strings"),
    ("yaml-user-name-number", ["-f", "FILE:user_name: 123\n"], "user_name", "string, not int (YAML reads it as a number: quote the value)"),
    ("yaml-dry-run-string", ["-f", "FILE:dry_run: 'yes'\n"], "dry_run", "must be true or false"),
    ("operator-policy-missing", ["sandbox", "start", "--operator-policy", "/nonexistent.json"],
     "--operator-policy", "cannot read the policy file"),
    ("operator-policy-not-json", ["sandbox", "start", "--operator-policy", "FILE:{not json"],
     "--operator-policy", "is not JSON"),
    ("operator-policy-bad-grammar", ["sandbox", "start", "--operator-policy",
                                     'FILE:{"Version": "2012-10-17", "Statement": '
                                     '[{"Effect": "Permit", "Action": "iam:*", '
                                     '"Resource": "*"}]}'],
     "--operator-policy", "Effect is 'Permit'"),
]


def _materialise(args: list[str], tmp_path) -> list[str]:
    out = []
    for number, arg in enumerate(args):
        if arg.startswith("FILE:"):
            path = tmp_path / f"input-{number}"
            path.write_text(arg[5:], encoding="utf-8")
            arg = str(path)
        elif arg.startswith("BYTES:"):
            path = tmp_path / f"input-{number}"
            path.write_bytes(arg[6:].encode("latin-1"))
            arg = str(path)
        elif arg == "FIFO":
            arg = str(tmp_path / "fifo")
            os.mkfifo(arg)
        elif arg.startswith("DIR"):
            arg = str(tmp_path) + arg[3:]
        out.append(arg)
    return out


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """An empty runbook home and AWS config: nothing to find, nothing started."""
    home = tmp_path / "home"
    (tmp_path / "sub").mkdir()
    monkeypatch.setenv("RUNBOOK_HOME", str(home))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    return home


@pytest.mark.parametrize("args, names, says", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_value__exits_2_names_the_parameter_and_calls_nothing(args, names, says, isolated,
                                                                 tmp_path, capsys):
    figure("bad inputs tried")
    argv = _materialise(args, tmp_path)
    runs = tmp_path / "runs"
    if argv[0] != "sandbox":
        argv = ["run", *argv, "--out", str(runs)]
    assert cli.main(argv) == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("error: bad parameter: "), stderr
    assert f"{names}=" in stderr and says in stderr, stderr
    assert not runs.exists()  # no run folder: no audit log, nothing ran
    assert not (isolated / "sandbox" / "state.json").exists()  # no sandbox was started
    figure("bad inputs refused")


def test_bad_input_cases__cover_every_parameter_of_the_link_and_at_least_30_values():
    from runbook import params as P
    from runbook.run import SECTIONS

    link = {n for s in SECTIONS for n in P.SECTION_MODELS[s].names()}
    assert link - {c[2] for c in CASES} == set()
    assert len(CASES) >= 30


@pytest.mark.e2e
def test_bad_values__through_the_real_cli__send_the_running_sandbox_no_request(
        fresh_home, runbook_cli, tmp_path):
    assert runbook_cli("sandbox", "start", home=fresh_home).returncode == 0
    log = fresh_home / "sandbox" / "moto.log"
    before = log.read_text()
    picks = ["user-name-cjk", "account-yaml-hex", "arn-wildcard-path", "yaml-unknown-key",
             "aws-profile-missing"]
    env = {"AWS_CONFIG_FILE": str(tmp_path / "aws-config"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials")}
    for case in [c for c in CASES if c[0] in picks]:
        figure("bad inputs tried")
        result = runbook_cli("run", *_materialise(case[1], tmp_path), home=fresh_home,
                             extra_env=env)
        assert result.returncode == 2, (case[0], result.stderr)
        assert f"{case[2]}=" in result.stderr and case[3] in result.stderr, result.stderr
        assert result.run_dir is None
        assert "Traceback" not in result.stderr
        figure("bad inputs refused")
    assert log.read_text() == before  # moto logs every request it gets: it got none


@pytest.mark.parametrize("text, value", [
    ("account_id: 012345678901\n", "012345678901"),
    ("account_id: 012345670123\n", "012345670123"),  # YAML 1.1 would read octal
    ("account_id: 123456789012\n", 123456789012),     # a number; normalise() restores it
    ("dry_run: yes\n", True),
])
def test_params_file__keeps_leading_zero_numbers_as_written(text, value, tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    assert list(cli.load_params_file(str(path)).values()) == [value]


def test_bad_value__a_huge_one__is_quoted_cut_short_in_the_message(isolated, tmp_path, capsys):
    assert cli.main(["run", "-p", "user_name", "x " * 100000, "--out", str(tmp_path / "r")]) == 2
    stderr = capsys.readouterr().err
    assert len(stderr) < 500 and "(200002 characters in all)" in stderr


@pytest.mark.parametrize("setup, says", [
    (lambda tmp, mp: ["--out", str(tmp / "afile")], "--out="),
    (lambda tmp, mp: mp.setenv("RUNBOOK_HOME", str(tmp / "afile")) or [], "RUNBOOK_HOME="),
    (lambda tmp, mp: mp.setenv("RUNBOOK_NOTEBOOKS", str(tmp / "nowhere")) or [],
     "RUNBOOK_NOTEBOOKS="),
    (lambda tmp, mp: ["--out", ""], "--out="),
    (lambda tmp, mp: ["--out", "/sys/kernel/runs"], "--out="),
    (lambda tmp, mp: mp.setenv("RUNBOOK_HOME", str(tmp / "afile" / "sub")) or [],
     "RUNBOOK_HOME="),
    (lambda tmp, mp: mp.setenv("RUNBOOK_HOME", "/proc") or [], "RUNBOOK_HOME='/proc': is under"),
    (lambda tmp, mp: mp.setenv("RUNBOOK_NOTEBOOKS", str(tmp)) or [],
     "RUNBOOK_NOTEBOOKS="),
    (lambda tmp, mp: (tmp / "loop").symlink_to(tmp / "loop") or ["--out", str(tmp / "loop")],
     "--out="),
    (lambda tmp, mp: ["--out", str(tmp / ("r" * 256))], "--out="),
    (lambda tmp, mp: (tmp / "loop").symlink_to(tmp / "loop") or [
        "-p", "credentials_file", str(tmp / "loop")], "credentials_file="),
], ids=["out-is-a-file", "home-is-a-file", "notebooks-missing", "out-empty", "out-under-sys",
        "home-under-a-file", "home-under-proc", "notebooks-folder-without-them", "out-loop",
        "out-name-too-long", "credentials-file-loop"])
def test_unusable_folder__exits_2_naming_it_without_a_traceback(setup, says, isolated, tmp_path,
                                                                monkeypatch, capsys):
    import tempfile
    from pathlib import Path

    figure("bad inputs tried")
    (tmp_path / "afile").write_text("x")
    argv = setup(tmp_path, monkeypatch)
    assert cli.main(["run", *argv]) == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith(f"error: bad parameter: {says}"), stderr
    assert not (isolated / "sandbox" / "state.json").exists()
    # The kernel a run starts first is gone with its folder.
    assert not list(Path(tempfile.gettempdir()).glob(f"runbook-kernel-{os.getpid()}-*"))
    figure("bad inputs refused")


def test_params_file_of_the_link__serves_rotate_too__its_other_names_left_out_with_a_note(
        isolated, tmp_path, capsys):
    path = tmp_path / "params.yaml"
    path.write_text("user_name: 'bad name'\nlimit_region: us-west-2\npolicy_name: p\n")
    assert cli.main(["rotate", "-f", str(path), "--out", str(tmp_path / "runs")]) == 2
    stderr = capsys.readouterr().err
    assert f"note: {path}: limit_region, policy_name not used by `runbook rotate`; left out" \
        in stderr
    assert "error: bad parameter: user_name='bad name'" in stderr
    assert "limit_region=" not in stderr.split("error:")[1]
