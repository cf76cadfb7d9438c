from __future__ import annotations

from pathlib import Path

from cli_harness import Cli


def _model_data(cli: Cli, tmp_path: Path) -> str:
    artifact = tmp_path / "model.tar.gz"
    artifact.write_bytes(b"not really a tarball")
    uri = "s3://models/m1/model.tar.gz"
    cli.ok("objects", "put", str(artifact), uri)
    return uri


def test_models_and_configs(cli: Cli, tmp_path: Path) -> None:
    uri = _model_data(cli, tmp_path)
    created = cli.json(
        "models", "create", "m1", "--model-data", uri, "--program", "serve.py", "--env", "A=1"
    )
    assert created["ModelArn"].endswith("m1")
    model = cli.json("models", "describe", "m1")
    env = model["PrimaryContainer"]["Environment"]
    assert env == {"A": "1", "SAGEMAKER_PROGRAM": "serve.py"}
    assert "m1" in cli.ok("models", "list").stdout
    assert "SAGEMAKER_PROGRAM" in cli.ok("models", "describe", "m1").stdout

    cli.ok("endpoint-configs", "create", "c1", "--model", "m1", "--instance-count", "2")
    config = cli.json("endpoint-configs", "describe", "c1")
    assert config["ProductionVariants"][0]["InitialInstanceCount"] == 2
    assert [
        c["EndpointConfigName"] for c in cli.json("endpoint-configs", "list")["EndpointConfigs"]
    ] == ["c1"]
    assert "AllTraffic" in cli.ok("endpoint-configs", "describe", "c1").stdout

    cli.ok("endpoint-configs", "delete", "c1")
    cli.ok("models", "delete", "m1")
    assert cli.json("models", "list")["Models"] == []


def test_bad_env_names_the_option(cli: Cli) -> None:
    result = cli("models", "create", "m1", "--model-data", "s3://models/x", "--env", "novalue")
    assert result.exit_code == 2
    assert "--env" in result.output


def test_endpoints_create_describe_delete(cli: Cli, tmp_path: Path) -> None:
    uri = _model_data(cli, tmp_path)
    cli.ok("models", "create", "m1", "--model-data", uri)
    cli.ok("endpoint-configs", "create", "c1", "--model", "m1")
    created = cli.json("endpoints", "create", "ep1", "--config", "c1", "--public")
    assert created["EndpointArn"].endswith("ep1")
    cli.run_pass()
    cli.run_pass()
    ep = cli.json("endpoints", "describe", "ep1")
    assert ep["EndpointStatus"] == "InService"
    assert ep["AuthMode"] == "None"
    panel = cli.ok("endpoints", "describe", "ep1").stdout
    assert "InService" in panel and "c1" in panel
    table = cli.ok("endpoints", "list").stdout
    assert "ep1" in table
    assert (
        cli.json("endpoints", "list", "--status", "InService")["Endpoints"][0]["EndpointName"]
        == "ep1"
    )

    assert "deleting endpoint ep1" in cli.ok("endpoints", "delete", "ep1").stdout
    cli.run_pass()
    cli.run_pass()
    assert cli("endpoints", "describe", "ep1").exit_code == 1


def test_invoke_with_a_missing_body_file_names_the_option(cli: Cli, tmp_path: Path) -> None:
    result = cli("invoke", "ep1", "--body", str(tmp_path / "missing.json"))
    assert result.exit_code == 2
    assert "--body" in result.output
    assert "missing.json" in result.output


def test_invoke_an_unknown_endpoint_is_a_clean_error(cli: Cli) -> None:
    result = cli("invoke", "nope", "--body", "-", stdin='{"x": 1}')
    assert result.exit_code == 1
    assert "error:" in result.stderr
    assert "Traceback" not in result.output


def test_objects_round_trip(cli: Cli, tmp_path: Path) -> None:
    src = tmp_path / "up.txt"
    src.write_text("hello objects\n")
    put = cli.json("objects", "put", str(src), "s3://bucket/dir/up.txt")
    assert put["Size"] == len("hello objects\n")

    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("a")
    (tree / "sub" / "b.txt").write_text("b")
    assert "uploaded 2 files" in cli.ok("objects", "put", str(tree), "s3://bucket/tree").stdout

    listed = cli.json("objects", "ls", "s3://bucket/")
    assert sorted(o["Uri"] for o in listed["Objects"]) == [
        "s3://bucket/dir/up.txt",
        "s3://bucket/tree/a.txt",
        "s3://bucket/tree/sub/b.txt",
    ]
    assert "s3://bucket/tree/sub/b.txt" in cli.ok("objects", "ls", "s3://bucket/tree").stdout

    out = tmp_path / "down.txt"
    cli.ok("objects", "get", "s3://bucket/dir/up.txt", str(out))
    assert out.read_text() == "hello objects\n"
    assert cli.ok("objects", "get", "s3://bucket/dir/up.txt", "-").stdout == "hello objects\n"

    cli.ok("objects", "rm", "s3://bucket/dir/up.txt")
    result = cli("objects", "get", "s3://bucket/dir/up.txt", str(out))
    assert result.exit_code == 1
    assert "error:" in result.stderr


def test_a_bad_object_uri_is_a_clean_error(cli: Cli) -> None:
    result = cli("objects", "rm", "not-a-uri")
    assert result.exit_code == 1
    assert "s3://" in result.stderr
    assert "field: uri" in result.stderr


def test_endpoints_update_starts_a_blue_green_update(cli: Cli, tmp_path: Path) -> None:
    uri = _model_data(cli, tmp_path)
    cli.ok("models", "create", "m1", "--model-data", uri)
    cli.ok("endpoint-configs", "create", "c1", "--model", "m1")
    cli.ok("endpoint-configs", "create", "c2", "--model", "m1")
    cli.ok("endpoints", "create", "ep1", "--config", "c1")
    cli.run_pass()
    cli.run_pass()
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "BlueGreenUpdatePolicy:\n"
        "  TrafficRoutingConfiguration:\n"
        "    Type: LINEAR\n"
        "    LinearStepSize: {Type: CAPACITY_PERCENT, Value: 50}\n"
        "    WaitIntervalInSeconds: 30\n"
    )
    out = cli.ok("endpoints", "update", "ep1", "--config", "c2", "--deployment-config", str(policy))
    assert "updating endpoint ep1 to c2" in out.stdout
    spec = cli.json("endpoints", "describe", "ep1")
    routing = spec["DeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert (routing["Type"], routing["LinearStepSize"]["Value"]) == ("LINEAR", 50)
    cli.run_pass()  # provisions the new fleet (fake replicas are ready at once)
    cli.run_pass()  # first linear step
    panel = cli.ok("endpoints", "describe", "ep1").stdout
    assert "to c2" in panel and "50% of traffic" in panel
    # A second update while this one runs is refused, with the reason.
    again = cli("endpoints", "update", "ep1", "--config", "c1", "--canary", "10")
    assert again.exit_code == 1 and "being updated" in again.output


def test_endpoints_update_names_the_bad_option(cli: Cli, tmp_path: Path) -> None:
    both = cli("endpoints", "update", "ep1", "--config", "c2", "--canary", "10", "--linear", "20")
    assert both.exit_code == 2 and "--linear" in both.output
    missing = cli(
        "endpoints", "update", "ep1", "--config", "c2", "--deployment-config", str(tmp_path / "no")
    )
    assert missing.exit_code == 2 and "--deployment-config" in missing.output
    assert "cannot read" in missing.output
    broken = tmp_path / "broken.yaml"
    broken.write_text("BlueGreenUpdatePolicy: [unclosed\n")
    result = cli("endpoints", "update", "ep1", "--config", "c2", "--deployment-config", str(broken))
    assert result.exit_code == 2 and "not valid JSON or YAML" in result.output
    scalar = tmp_path / "scalar.json"
    scalar.write_text("42")
    result = cli("endpoints", "update", "ep1", "--config", "c2", "--deployment-config", str(scalar))
    assert result.exit_code == 2 and "must hold a mapping" in result.output
    policy = tmp_path / "policy.json"
    policy.write_text(
        '{"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {"Type": "CANARY"}}}'
    )
    result = cli("endpoints", "update", "ep1", "--config", "c2", "--deployment-config", str(policy))
    assert result.exit_code == 1 and "CanarySize is required" in result.output
