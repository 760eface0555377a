"""botocore's data loaded lean for the credential chain of rpd's S3 client (issue 17's memory
target, io/botocore_data.py): the same files and the same clients as botocore's own loader
gives, in plain dicts, documentation text emptied, the endpoints file holding only the services
an S3 session calls."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("botocore")

from botocore.loaders import Loader
from botocore.regions import EndpointResolver
from botocore.session import Session

from rudder_pipedrive_cli.io.botocore_data import (
    SERVICES,
    LeanFileLoader,
    endpoints,
    lean_s3_session,
    parse,
)


def blanked(node: Any) -> Any:
    """`node` with every documentation string emptied, as plain dicts."""
    if isinstance(node, dict):
        return {
            key: "" if key == "documentation" and isinstance(value, str) else blanked(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [blanked(value) for value in node]
    return node


def documentation(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["documentation"]] if isinstance(node.get("documentation"), str) else []
        return found + [text for value in node.values() for text in documentation(value)]
    if isinstance(node, list):
        return [text for value in node for text in documentation(value)]
    return []


@pytest.mark.parametrize("kind", ["service-2", "endpoint-rule-set-1", "paginators-1"])
def test_the_s3_models_are_botocore_s_own_with_the_documentation_emptied(kind: str) -> None:
    stock = Loader().load_service_model("s3", kind)
    lean = Loader(file_loader=LeanFileLoader()).load_service_model("s3", kind)
    assert type(lean) is dict
    assert lean == blanked(stock)
    assert set(documentation(lean)) <= {""}
    if kind != "paginators-1":
        assert len("".join(documentation(stock))) > 1000  # there was text to empty


def test_the_endpoints_keep_each_partition_whole_with_the_services_an_s3_session_calls() -> None:
    stock = Loader().load_data("endpoints")
    lean = Loader(file_loader=LeanFileLoader()).load_data("endpoints")
    assert [p["partition"] for p in lean["partitions"]] == [
        p["partition"] for p in stock["partitions"]
    ]
    for got, full in zip(lean["partitions"], stock["partitions"], strict=True):
        assert {k: v for k, v in got.items() if k != "services"} == {
            k: v for k, v in full.items() if k != "services"
        }
        assert got["services"] == {k: v for k, v in full["services"].items() if k in SERVICES}
        assert "s3" in got["services"] and len(full["services"]) > 50
    assert {k: v for k, v in lean.items() if k != "partitions"} == {
        k: v for k, v in stock.items() if k != "partitions"
    }
    # Each service an S3 session calls resolves as with botocore's whole file, in every region.
    stock_resolver, lean_resolver = EndpointResolver(stock), EndpointResolver(lean)
    for partition in stock["partitions"]:
        for region in partition["regions"]:
            for service in sorted(SERVICES):
                assert lean_resolver.construct_endpoint(
                    service, region
                ) == stock_resolver.construct_endpoint(service, region), (service, region)


def client_meta(session: Session, service: str, region: str) -> tuple[Any, ...]:
    client = session.create_client(
        service, region_name=region, aws_access_key_id="k", aws_secret_access_key="s"
    )
    meta = client.meta
    return (
        meta.endpoint_url,
        meta.region_name,
        meta.partition,
        meta.config.signature_version,
        sorted(meta.method_to_api_mapping),
    )


@pytest.mark.parametrize(
    ("service", "region"),
    [
        ("s3", "us-east-1"),
        ("s3", "eu-central-1"),
        ("s3", "cn-north-1"),
        ("s3", "us-gov-west-1"),
        ("sts", "us-east-1"),
        ("sts", "ap-southeast-2"),
    ],
)
def test_a_client_of_the_lean_session_is_the_one_botocore_makes(
    service: str, region: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_DATA_PATH", raising=False)
    stock = client_meta(Session(), service, region)
    lean = client_meta(lean_s3_session(), service, region)
    assert lean == stock
    assert lean[0].startswith("https://")
    assert ("get_object" in lean[4]) is (service == "s3")


def test_every_s3_session_shares_one_loader_per_data_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_DATA_PATH", raising=False)
    first, second = lean_s3_session(), lean_s3_session()
    loader = first.get_component("data_loader")
    assert second.get_component("data_loader") is loader
    assert isinstance(loader.file_loader, LeanFileLoader)
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    elsewhere = lean_s3_session().get_component("data_loader")
    assert elsewhere is not loader
    assert elsewhere.search_paths[0] == str(tmp_path)  # AWS_DATA_PATH is looked in first
    assert isinstance(elsewhere.file_loader, LeanFileLoader)


def test_the_chain_s_session_reads_the_profile_of_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config"
    config.write_text("[profile lean]\naws_access_key_id = LEAN\naws_secret_access_key = s\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "lean")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    session = lean_s3_session()
    assert isinstance(session.get_component("data_loader").file_loader, LeanFileLoader)
    assert session.get_credentials().get_frozen_credentials().access_key == "LEAN"


def test_documentation_strings_are_emptied_and_nothing_else() -> None:
    raw = (
        b'{"documentation" : "a \\"quoted\\" \\\\ text {x}", '
        b'"note": "the \\"documentation\\": \\"kept\\"", "documentationUrl": "u", '
        b'"shapes": [{"documentation":"y", "n": null}, {"documentation": 3}]}'
    )
    assert parse(raw) == {
        "documentation": "",
        "note": 'the "documentation": "kept"',
        "documentationUrl": "u",
        "shapes": [{"documentation": "", "n": None}, {"documentation": 3}],
    }


def test_a_file_orjson_refuses_is_read_by_json_plain_or_gzipped(tmp_path: Path) -> None:
    text = b'{"big": 18446744073709551616, "documentation": "d"}'
    (tmp_path / "plain.json").write_bytes(text)
    (tmp_path / "zipped.json.gz").write_bytes(gzip.compress(text))
    loader = LeanFileLoader()
    expected = {"big": 18446744073709551616, "documentation": ""}
    assert loader.load_file(str(tmp_path / "plain")) == expected
    assert loader.load_file(str(tmp_path / "zipped")) == expected
    assert loader.load_file(str(tmp_path / "missing")) is None


def test_endpoints_drop_other_services_whatever_the_spacing() -> None:
    raw = (
        b'\t{"partitions":[ {"services" :{"ec2": {"endpoints": {"x": {}}}, "s3":{"a": [1, '
        b'{"b": null}]}, "sts": {}}, "regions": {"r": {}}},\r\n{"services": {}} ],\n'
        b'"version": 3 }\n'
    )
    assert endpoints(raw, SERVICES) == {
        "partitions": [
            {"services": {"s3": {"a": [1, {"b": None}]}, "sts": {}}, "regions": {"r": {}}},
            {"services": {}},
        ],
        "version": 3,
    }


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # Not botocore's shape: read whole, nothing to trim.
        (b'{"partitions": "none", "version": 3}', {"partitions": "none", "version": 3}),
        (b'[{"services": {"ec2": {}}}]', [{"services": {"ec2": {}}}]),
        # Services that are not an object: read whole, the others trimmed.
        (
            b'{"partitions": [{"services": []}, {"services": {"ec2": {}, "s3": {}}}]}',
            {"partitions": [{"services": []}, {"services": {"s3": {}}}]},
        ),
    ],
)
def test_an_endpoints_file_of_another_shape_is_read_whole_then_trimmed(
    raw: bytes, expected: Any
) -> None:
    assert endpoints(raw, SERVICES) == expected


def test_broken_endpoints_json_is_an_error_as_botocore_s_would_be() -> None:
    with pytest.raises(ValueError):
        endpoints(b'{"partitions": [{"services": {"s3": }}]}', SERVICES)
