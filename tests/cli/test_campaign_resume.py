"""`signer campaign apply` into a directory an earlier run wrote: its report.json is merged
into (the earlier devices and files stay), no file there is overwritten, and a report of
another plan is refused; `campaign plan` names the plan a new one supersedes."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.support.devenv import DevEnv

B1, B2 = "00-DB-12-34-56-78-90-B1", "00-DB-12-34-56-78-90-B2"
EARLIER = "00-DB-12-34-56-78-90-E1"  # a device only the earlier run's report names
OUT = Path("var/dev/resumed")


def campaign(env: DevEnv, *args: str, code: int = 0) -> str:
    """``signer campaign ARGS`` against the dev server; its output, after its exit code."""
    assert env.server is not None
    out = env.signer("campaign", *args, "--server", env.server.address, check=False)
    assert out.returncode == code, f"exit {out.returncode}:\n{out.stdout}\n{out.stderr}"
    return out.stdout + out.stderr


def verified(env: DevEnv) -> str:
    ex = "var/dev/example"
    env.signer(
        "verify",
        "--ota-header",
        f"{ex}/ota_header.bin",
        "--manufacturer-image",
        f"{ex}/manufacturer_image.bin",
        "--signature",
        f"{ex}/manufacturer_signature.der",
        "--hash",
        f"{ex}/hash.hex",
    )
    return (env.root / f"{ex}/hash.hex").read_text().strip()


def planned(env: DevEnv, image_id: str, *extra: str) -> tuple[str, str]:
    text = campaign(
        env,
        "plan",
        "--as",
        "alice",
        "--image-id",
        image_id,
        "--produce",
        "activation",
        "--device",
        B1,
        "--device",
        B2,
        *extra,
    )
    found = re.search(r"^plan ([0-9a-f]{64})$", text, flags=re.M)
    assert found, text
    return found.group(1), text


def approved(env: DevEnv, plan_id: str) -> None:
    for who in ("bob", "carol"):
        shown = campaign(env, "approve", plan_id, "--as", who)
        if "state: approved" in shown:
            return
    raise AssertionError(shown)


def test_a_resumed_apply_merges_its_report_and_overwrites_no_file(dev_env: DevEnv) -> None:
    image_id = verified(dev_env)
    plan_id, _ = planned(dev_env, image_id)
    approved(dev_env, plan_id)
    out = dev_env.root / OUT
    out.mkdir(parents=True)
    # what an earlier, interrupted run left: a file of the name B1's activation gets, and
    # its report (naming a device and a file this run is not told of)
    taken = out / f"{B1}.xml"
    taken.write_bytes(b"written by the earlier run")
    earlier_file = str(out / "earlier.xml")
    (out / "earlier.xml").write_bytes(b"earlier")
    earlier_entry = {
        "outcome": "issued",
        "files": [earlier_file],
        "request_ids": ["earlier-rid"],
        "withheld": [],
        "already_issued": [],
    }
    (out / "report.json").write_text(
        json.dumps(
            {
                "plan_id": plan_id,
                "runs": 1,
                "plan": None,
                "complete": False,
                "devices": {EARLIER: earlier_entry},
                "files": [
                    {
                        "kind": "activation",
                        "file": earlier_file,
                        "device_ids": [EARLIER],
                        "request_id": "earlier-rid",
                    }
                ],
                "withheld": [],
                "refused": [],
                "already_issued": [],
            }
        )
    )
    applied = campaign(dev_env, "apply", plan_id, "--as", "alice", "--out-dir", str(OUT))
    assert "3 file(s) in" in applied and "3 activation(s)" in applied, applied
    assert taken.read_bytes() == b"written by the earlier run"
    report = json.loads((out / "report.json").read_text())
    assert report["runs"] == 2 and report["complete"] is True
    assert report["devices"][EARLIER] == earlier_entry
    assert {d: e["outcome"] for d, e in report["devices"].items()} == {
        EARLIER: "issued",
        B1: "issued",
        B2: "issued",
    }
    assert [Path(f).name for f in report["devices"][B1]["files"]] == [f"{B1}-2.xml"]
    assert b"ActivateFirmware" in (out / f"{B1}-2.xml").read_bytes()
    assert report["files"][0]["file"] == earlier_file
    assert len(report["files"]) == 3

    # applied already: refused, and the report it writes still holds every run's results
    campaign(dev_env, "apply", plan_id, "--as", "alice", "--out-dir", str(OUT), code=1)
    again = json.loads((out / "report.json").read_text())
    assert again["runs"] == 3
    assert again["devices"] == report["devices"] and again["files"] == report["files"]


def test_a_report_of_another_plan_is_refused(dev_env: DevEnv) -> None:
    image_id = verified(dev_env)
    plan_id, _ = planned(dev_env, image_id)
    out = dev_env.root / OUT
    out.mkdir(parents=True)
    (out / "report.json").write_text(json.dumps({"plan_id": "ab" * 32, "devices": {}}))
    text = campaign(dev_env, "apply", plan_id, "--as", "alice", "--out-dir", str(OUT), code=2)
    assert text.startswith("Error: ") and "ab" * 32 in text and "\n" not in text.strip()
    (out / "report.json").write_text("{not json")
    text = campaign(dev_env, "apply", plan_id, "--as", "alice", "--out-dir", str(OUT), code=2)
    assert "report.json is not a report" in text and "Traceback" not in text


def test_a_plan_made_again_shows_the_plan_it_supersedes(dev_env: DevEnv) -> None:
    image_id = verified(dev_env)
    first, text = planned(dev_env, image_id)
    assert "supersedes" not in text
    campaign(dev_env, "reject", first, "--as", "bob", "--reason", "plan it again")
    again, text = planned(dev_env, image_id)
    assert again != first
    assert f"supersedes: {first}" in text
    assert f"supersedes: {first}" in campaign(dev_env, "show", again)
    shown = json.loads(campaign(dev_env, "show", again, "--json"))
    assert shown["plan"]["supersedes"] == first
