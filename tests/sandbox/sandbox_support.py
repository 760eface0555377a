"""Constants and helpers the sandbox tests share (fixtures live in conftest.py)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from openapi_contract import load

TOKEN = "sandbox-token"
START = 1_780_000_000.0  # 2026-05-28T20:26:40Z: far from a UTC midnight

USER_ID_FIELD = "fee6cb40e6895dcf1bb7a95a3ccc8f9a3d205d48"
ROLE_FIELD = "6098b979cd7506a9c2b183a7814c70e8a6a08a3f"
PLAN_FIELD = "2166d04123ea6d974ed242877a8d769fe934c896"
GROUP_ID_FIELD = "872513dc3f908b99275edf2d09fcc9a467df9fa5"
INDUSTRY_FIELD = "defb159c0eed85085c8281ba35dedef9760c65bd"
EMPLOYEES_FIELD = "30ad8f346a94dd54e680b1f9410672d8c6253b5b"
SOURCE_FIELD = "01bc2d5edda1b591f488b8eb969bde67eb7dcf5e"
CAMPAIGN_FIELD = "0ad278b60b7e6b783e51a7f5b9cef17d732fe978"
HOT = "894a5e59-22f4-5b36-a557-3d4b8fe1cbfa"
# What a fresh or reset sandbox holds.
EMPTY_STATE = {
    "persons": [],
    "organizations": [],
    "leads": [],
    "merges": [],
    "deals": [],
    "activities": [],
    "notes": [],
}
ERROR_INFO = "Please check developers.pipedrive.com for more information about Pipedrive API."


def error(message: str) -> dict[str, Any]:
    """Pipedrive's error envelope."""
    return {
        "success": False,
        "error": message,
        "error_info": ERROR_INFO,
        "data": None,
        "additional_data": None,
    }


def search(client: httpx.Client, term: str, field: str = USER_ID_FIELD, **extra: Any) -> Any:
    params = {"term": term, "entity_type": "person", "field": field, "match": "exact", **extra}
    return client.get("/api/v2/itemSearch/field", params=params)


def create_person(client: httpx.Client, **body: Any) -> dict[str, Any]:
    response = client.post("/api/v2/persons", json={"name": "Ann Lee", **body})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def load_openapi(name: str) -> dict[str, Any]:
    """A parsed Pipedrive description, found and cached as the request contract does."""
    return dict(load(name))


def start_cli(*args: str) -> tuple[subprocess.Popen[str], str]:
    """`rpd sandbox --port 0 ARGS` in a child process, and the first line it printed."""
    process = subprocess.Popen(
        [sys.executable, "-m", "rudder_pipedrive_cli", "sandbox", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, process.stdout.readline()


def extract_script() -> Any:
    """scripts/extract_sandbox_schemas.py as a module (its OPERATIONS list what is served)."""
    path = Path(__file__).resolve().parents[2] / "scripts" / "extract_sandbox_schemas.py"
    spec = importlib.util.spec_from_file_location("extract_sandbox_schemas", path)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script
