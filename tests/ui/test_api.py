"""The viewer's JSON API and static files, over HTTP from a real server on 127.0.0.1."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import httpx
import pytest

from agentflow.ui import cli as ui_cli
from agentflow.ui.app import STATIC

from .conftest import BIG_ITEMS, Viewer


def get(viewer: Viewer, path: str, status: int = 200) -> dict:
    response = httpx.get(viewer.url + path, timeout=10)
    assert response.status_code == status, response.text
    return response.json()


def test_runs_are_listed_filtered_and_sorted(viewer: Viewer) -> None:
    body = get(viewer, "/api/runs")
    assert [r["run_id"] for r in body["runs"]][:3] == [viewer.ids[k] for k in ("failed", "chat", "ok")]
    assert body["workflows"] == ["agentic_rag", "big", "demo_rag"]
    assert [r["run_id"] for r in get(viewer, "/api/runs?status=error")["runs"]] == [viewer.ids["failed"]]
    assert {r["workflow"] for r in get(viewer, "/api/runs?workflow=big")["runs"]} == {"big"}
    by_cost = get(viewer, "/api/runs?sort=cost")["runs"]
    assert by_cost[0]["run_id"] == BIG_RUN_ID(viewer) and by_cost[0]["cost"] == pytest.approx(1.0)
    cheapest = get(viewer, "/api/runs?sort=cost&order=asc&workflow=demo_rag")["runs"][0]
    assert cheapest["run_id"] == viewer.ids["chat"]
    by_latency = [r["duration_s"] for r in get(viewer, "/api/runs?sort=latency")["runs"]]
    assert by_latency == sorted(by_latency, reverse=True)
    assert "unknown sort 'size'" in get(viewer, "/api/runs?sort=size", 400)["detail"]
    assert "unknown status" in get(viewer, "/api/runs?status=meh", 400)["detail"]


def BIG_RUN_ID(viewer: Viewer) -> str:  # noqa: N802 - reads like the constant it returns
    return viewer.ids["big"]


def test_a_run_comes_with_its_graph_and_columnar_spans_without_payloads(viewer: Viewer) -> None:
    run = get(viewer, f"/api/runs/{viewer.ids['ok'][:8]}")
    assert run["run_id"] == viewer.ids["ok"] and run["graph"]["flow"] == "demo_rag"
    fields = run["span_fields"]
    assert "data" not in fields and len(run["spans"]) == 35
    spans = [dict(zip(fields, row, strict=True)) for row in run["spans"]]
    call = next(s for s in spans if s["kind"] == "model_call")
    assert call["summary"]["model"] == "offline/classifier" and call["summary"]["tokens"] == 25
    big = get(viewer, f"/api/runs/{viewer.ids['big']}")
    assert len(big["spans"]) == 1 + 5 * BIG_ITEMS
    assert get(viewer, "/api/runs/nope", 404)["detail"].startswith("no run 'nope'")


def test_a_span_comes_with_its_payload_and_its_children(viewer: Viewer) -> None:
    run = get(viewer, f"/api/runs/{viewer.ids['ok']}")
    spans = [dict(zip(run["span_fields"], row, strict=True)) for row in run["spans"]]
    answer = [s for s in spans if s["kind"] == "node" and s["name"] == "answer"][1]
    body = get(viewer, f"/api/runs/{viewer.ids['ok']}/spans/{answer['seq']}")
    assert body["span"]["data"]["update"]["attempt"] == 2
    (call,) = body["children"]
    assert call["kind"] == "model_call" and call["data"]["sampling"]["temperature"] == 0.3
    assert call["data"]["api_key"] == "[REDACTED]"
    assert get(viewer, f"/api/runs/{viewer.ids['ok']}/spans/9999", 404)["detail"]


def test_citations_are_matched_with_passages_from_the_run(viewer: Viewer) -> None:
    body = get(viewer, f"/api/runs/{viewer.ids['ok']}/citations")
    assert body["answer_field"] == "answer" and "[DOC 2]" in body["answer"]
    assert [(c["marker"], c["passage"]["source"], c["quote_found"]) for c in body["citations"]] == [
        ("[DOC 1]", "loops.md", True), ("[DOC 2]", "maps.md", True)]
    assert get(viewer, f"/api/runs/{viewer.ids['chat']}/citations")["citations"] == []


def test_pages_and_static_files_are_served_from_the_package_with_no_cdn(viewer: Viewer) -> None:
    for path in ("/", f"/runs/{viewer.ids['ok']}", "/compare?a=x&b=y"):
        response = httpx.get(viewer.url + path)
        assert response.status_code == 200 and '<main id="app">' in response.text
    html = httpx.get(viewer.url + "/").text
    (prefix,) = set(re.findall(r'"(/static/[0-9a-f]{10})/app.css"', html))
    assert httpx.get(viewer.url + prefix + "/js/main.js").status_code == 200
    css = httpx.get(viewer.url + prefix + "/app.css")
    assert css.headers["content-type"].startswith("text/css")
    assert css.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert httpx.get(viewer.url + "/").headers["cache-control"] == "no-cache"
    for file in Path(STATIC).rglob("*"):
        if file.is_file():
            text = file.read_text(encoding="utf-8")
            assert not re.search(r"(?:src|href)\s*=\s*[\"']?(?:https?:)?//", text), file
            assert not re.search(r"import[^;]*from\s+[\"']https?:", text), file


def test_an_empty_project_lists_no_runs_instead_of_failing(tmp_path: Path) -> None:
    from agentflow.ui.server import ServerThread

    with ServerThread(tmp_path / "none.db") as server:
        body = httpx.get(server.url + "/api/runs").json()
        assert body["runs"] == [] and body["db"].endswith("none.db")
        assert httpx.get(server.url + "/api/runs/abc").status_code == 404


def test_the_ui_command_listens_on_localhost_unless_told_otherwise() -> None:
    parser = argparse.ArgumentParser()
    ui_cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["ui"])
    assert (args.host, args.port, args.db) == ("127.0.0.1", 8737, None)
    args = parser.parse_args(["ui", "--port", "9000", "--host", "0.0.0.0", "--db", "x.db"])
    assert (args.host, args.port, args.db) == ("0.0.0.0", 9000, ["x.db"])
    bad = parser.parse_args(["ui", "--port", "0"])
    assert bad.handler(bad) == 2


def test_numbers_too_big_for_sqlite_are_not_found_instead_of_failing(viewer: Viewer) -> None:
    run = viewer.ids["ok"]
    for seq in ("99999999999999999999999", "-1", str(2**63)):
        assert "has no span" in get(viewer, f"/api/runs/{run}/spans/{seq}", 404)["detail"]
    assert get(viewer, "/api/runs?offset=99999999999999999999999", 422)["detail"][0]["loc"] == ["query", "offset"]
    assert get(viewer, "/api/runs?offset=1000000")["runs"] == []


def test_requests_naming_another_host_are_refused(viewer: Viewer) -> None:
    port = viewer.url.rsplit(":", 1)[1]
    response = httpx.get(viewer.url + "/api/runs", headers={"Host": "attacker.example"})
    assert response.status_code == 403
    detail = response.json()["detail"]
    assert "'attacker.example'" in detail and "127.0.0.1, localhost, [::1]" in detail
    assert httpx.get(viewer.url + "/", headers={"Host": "attacker.example:8737"}).status_code == 403
    for host in (f"localhost:{port}", f"[::1]:{port}", "127.0.0.1"):
        assert httpx.get(viewer.url + "/api/runs", headers={"Host": host}).status_code == 200, host


def test_allowed_host_names_are_added_with_allow_host(tmp_path: Path) -> None:
    from agentflow.ui.server import ServerThread

    with ServerThread(tmp_path / "none.db", allow_hosts=["traces.lan"]) as server:
        assert httpx.get(server.url + "/api/runs", headers={"Host": "traces.lan:8737"}).status_code == 200
        assert httpx.get(server.url + "/api/runs", headers={"Host": "other.lan"}).status_code == 403
    parser = argparse.ArgumentParser()
    ui_cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["ui", "--allow-host", "a.lan", "--allow-host", "*.corp.example"])
    assert args.allow_host == ["a.lan", "*.corp.example"]
    bad = parser.parse_args(["ui", "--allow-host", "a.*.example"])
    assert bad.handler(bad) == 2


def test_the_list_shows_the_question_outcome_route_origin_and_finds_runs_by_text(viewer: Viewer) -> None:
    runs = {r["run_id"]: r for r in get(viewer, "/api/runs")["runs"]}
    caveat = runs[viewer.ids["caveat"]]
    assert caveat["status"] == "ok" and caveat["outcome"] == "caveat"
    assert caveat["question"] == "How does a loop decide when to stop?"
    assert caveat["route"] == "knowledge" and caveat["tags"] == {"origin": "run"}
    assert caveat["answer"].startswith("Every loop is bounded")
    assert runs[viewer.ids["abstained"]]["outcome"] == "abstained"
    assert runs[viewer.ids["passed"]]["outcome"] == "ok"
    assert runs[viewer.ids["ok"]]["tags"]["origin"] == "test"  # recorded under pytest
    assert runs[viewer.ids["failed"]]["outcome"] == "error"

    def ids(query: str) -> list[str]:
        return [r["run_id"] for r in get(viewer, f"/api/runs?{query}")["runs"]]

    assert ids("status=caveat") == [viewer.ids["caveat"]]
    assert ids("status=abstained") == [viewer.ids["abstained"]]
    assert viewer.ids["caveat"] not in ids("status=ok")
    assert ids("q=loop%20decide") == [viewer.ids["caveat"]]  # the question
    assert ids("q=cannot%20answer") == [viewer.ids["abstained"]]  # the answer
    assert ids("q=MODEL%20UNAVAILABLE") == [viewer.ids["failed"]]  # the error, any case
    assert ids("q=100%25") == []  # LIKE wildcards are searched as text
    assert ids("tag=origin%3Dserve") == [viewer.ids["abstained"]]
    assert ids("tag=variant") == [viewer.ids["abstained"]]
    assert ids("tag=origin%3Deval&q=bounded") == [viewer.ids["passed"]]
    tags = get(viewer, "/api/runs")["tags"]
    assert tags["origin"] == ["test", "eval", "run", "serve"] or set(tags["origin"]) == {
        "test", "eval", "run", "serve"}
    assert "unknown status 'meh'" in get(viewer, "/api/runs?status=meh", 400)["detail"]


def test_the_viewer_says_which_database_it_shows_and_finds_the_others(viewer: Viewer) -> None:
    info = get(viewer, "/api/info")
    assert info["db"]["path"] == str(viewer.db.resolve())
    paths = [d["path"] for d in info["databases"]]
    assert paths == [str(viewer.db.resolve()), str(viewer.other_db.resolve())]
    other = info["databases"][1]["id"]
    body = httpx.get(viewer.url + "/api/runs", cookies={"af_db": other}).json()
    assert [r["question"] for r in body["runs"]] == ["A question asked in project B?"]
    assert body["db"] == str(viewer.other_db)
    # a run of another database opens by its id whatever is shown, and says where it is
    run = get(viewer, f"/api/runs/{'e' * 32}")
    assert run["db"]["path"] == str(viewer.other_db.resolve()) and run["db"]["shown"] is False
    # an id the viewer does not know falls back to the first database: no path can be injected
    body = httpx.get(viewer.url + "/api/info", cookies={"af_db": "../../etc"}).json()
    assert body["db"]["path"] == str(viewer.db.resolve())


def test_feedback_is_stored_with_the_run_listed_and_refused_when_malformed(viewer: Viewer) -> None:
    run = viewer.ids["passed"]
    url = f"{viewer.url}/api/runs/{run}/feedback"
    made = httpx.post(url, json={"score": "down", "comment": "cites the wrong page"}).json()["feedback"]
    assert (made["score"], made["comment"], made["source"]) == (-1, "cites the wrong page", "ui")
    from agentflow.tracing.query import TraceReader

    with TraceReader(viewer.db) as reader:
        assert [f.comment for f in reader.feedback(run)][-1] == "cites the wrong page"
    listed = next(r for r in get(viewer, "/api/runs")["runs"] if r["run_id"] == run)
    assert listed["feedback_down"] >= 1
    assert get(viewer, f"/api/runs/{run}")["feedback"][-1]["comment"] == "cites the wrong page"
    # the export carries it, with the run's tags
    from tracing.demo import traces

    out = viewer.root / "export.jsonl"
    assert traces("export", run, "--db", str(viewer.db), "-o", str(out)) == 0
    (exported,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert exported["tags"] == {"origin": "eval"}
    assert {(f["score"], f["comment"], f["source"]) for f in exported["feedback"]} >= {
        (-1, "cites the wrong page", "ui")}
    assert "not valid" in httpx.post(url, json={"score": "meh"}).json()["detail"]
    assert httpx.post(url, content="score=up", headers={
        "Content-Type": "application/x-www-form-urlencoded"}).status_code == 415
    assert httpx.post(url, json={"score": "up"}, headers={
        "Origin": "http://evil.example"}).status_code == 403
    assert httpx.post(f"{viewer.url}/api/runs/nope/feedback", json={"score": "up"}).status_code == 404


def test_evaluations_are_listed_with_their_items_and_compared_with_a_test(viewer: Viewer) -> None:
    listed = {e["name"]: e for e in get(viewer, "/api/evals")["evals"]}
    assert set(listed) == {"baseline", "warm-cache"}
    assert listed["baseline"]["items"] == {"planned": 12, "finished": 12, "ok": 11, "errors": 1}
    assert listed["baseline"]["metrics"]["token_f1"] == pytest.approx(7.2 / 11, abs=1e-4)
    detail = get(viewer, f"/api/evals/{viewer.evals['baseline']}")
    first = detail["items"][0]
    assert first["question"] == "How does feature 0 work?" and first["expected"] == "feature 0 works"
    assert first["run_id"] == viewer.ids["passed"] and first["metrics"]["token_f1"] == 1.0
    assert [i["id"] for i in detail["items"] if i["failing_checks"]] == ["q2", "q5", "q7", "q10"]
    cmp = get(viewer, f"/api/evals/compare?a={viewer.evals['baseline']}&b={viewer.evals['warm']}")
    rows = {r["name"]: r for r in cmp["rows"]}
    assert rows["token_f1"]["verdict"] == "within noise" and rows["token_f1"]["test"]["n"] == 11
    latency = rows["latency_p50_s"]
    assert latency["delta"] < 0 and latency["verdict"] == "cache"
    assert "warm embedding cache" in latency["cache_notes"][0]
    assert "embedding" in cmp["cache"]["notes"]
    assert cmp["same_items"] == ["overrides: [] → ['nodes.answer.model=large-v2']"]
    assert get(viewer, "/api/evals/nope", 404)["detail"].startswith("no evaluation")
    # feedback on an item's run shows with the item, and sums up per evaluation
    httpx.post(f"{viewer.url}/api/runs/{viewer.ids['caveat']}/feedback", json={"score": "up"})
    items = {i["id"]: i for i in get(viewer, f"/api/evals/{viewer.evals['baseline']}")["items"]}
    assert items["q1"]["run_id"] == viewer.ids["caveat"] and items["q1"]["feedback_up"] >= 1
    cmp = get(viewer, f"/api/evals/compare?a={viewer.evals['baseline']}&b={viewer.evals['warm']}")
    assert cmp["a"]["feedback"]["up"] >= 1 and cmp["a"]["feedback"]["runs_rated"] >= 1


def test_the_ui_command_says_which_database_it_shows_and_which_others_it_found(
        viewer: Viewer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import agentflow.ui.server as server

    served: dict[str, object] = {}
    monkeypatch.setattr(server, "serve", lambda dbs, **kw: served.update(dbs=dbs, **kw))
    monkeypatch.chdir(viewer.root)
    monkeypatch.delenv("AGENTFLOW_TRACES_DB", raising=False)
    parser = argparse.ArgumentParser()
    ui_cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["ui", "--evals", "elsewhere"])
    assert args.handler(args) == 0
    err = capsys.readouterr().err
    assert f"agentflow traces from {viewer.db.resolve()}: http://127.0.0.1:8737" in err
    assert f"1 other trace database(s) in the page's picker: {viewer.other_db.resolve()}" in err
    assert served["discover"] == viewer.root and served["evals"] == ["elsewhere"]
    args = parser.parse_args(["ui", "--db", str(viewer.root / "none.db")])
    assert args.handler(args) == 0
    assert "(no runs yet)" in capsys.readouterr().err
