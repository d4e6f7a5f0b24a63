"""agentctl's rendering: the STATUS word, READY and RESTARTS columns, ages, tables."""

import datetime as dt

from agent.cli import render

NOW = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.timezone.utc)


def _status(**containers_state):
    return {
        "phase": "Running",
        "containerStatuses": [
            {"name": name, "ready": state.get("ready", False), "restartCount": state.get("restarts", 0),
             "state": state["state"], "lastState": state.get("last", {})}
            for name, state in containers_state.items()
        ],
    }


def test_status_word_prefers_waiting_reason_over_phase():
    status = _status(app={"state": {"waiting": {"reason": "CrashLoopBackOff"}}})
    assert render.pod_status_word(status) == "CrashLoopBackOff"


def test_status_word_terminated_reason_and_exit_code():
    assert render.pod_status_word(_status(app={"state": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}})) == "OOMKilled"
    assert render.pod_status_word(_status(app={"state": {"terminated": {"exitCode": 3}}})) == "ExitCode:3"


def test_status_word_is_phase_when_all_running():
    assert render.pod_status_word(_status(app={"state": {"running": {}}})) == "Running"
    assert render.pod_status_word({}) == "Unknown"


def test_ready_column_counts_ready_containers():
    status = _status(a={"state": {"running": {}}, "ready": True}, b={"state": {"running": {}}})
    assert render.ready_column(status, 2) == "1/2"
    assert render.ready_column({}, 3) == "0/3"


def test_restarts_column_shows_time_since_last_termination():
    status = _status(app={"state": {"running": {}}, "restarts": 4,
                          "last": {"terminated": {"finishedAt": "2026-01-01T11:59:30Z"}}})
    assert render.restarts_column(status, NOW) == "4 (30s ago)"
    assert render.restarts_column(_status(app={"state": {"running": {}}}), NOW) == "0"


def test_human_duration_like_kubectl():
    assert render.human_duration(5) == "5s"
    assert render.human_duration(119) == "119s"
    assert render.human_duration(192) == "3m12s"
    assert render.human_duration(3600 * 5) == "5h"
    assert render.human_duration(86400 * 2 + 3600 * 3) == "2d3h"


def test_table_aligns_columns():
    out = render.table(["NAME", "STATUS"], [["a", "Running"], ["longer-name", "Pending"]])
    lines = out.splitlines()
    assert lines[0] == "NAME          STATUS"
    assert lines[2] == "longer-name   Pending"


def test_pod_row_wide_has_ip_and_node():
    pod = {"metadata": {"name": "web"}, "spec": {"containers": [{}], "nodeName": "n1"}}
    status = {"phase": "Running", "podIP": "172.17.0.2", "startTime": "2026-01-01T11:58:00Z",
              "containerStatuses": [{"ready": True, "restartCount": 0, "state": {"running": {}}}]}
    assert render.pod_row(pod, status, NOW, wide=True) == ["web", "1/1", "Running", "0", "2m", "172.17.0.2", "n1"]


def test_events_section_and_rows_as_kubectl_prints_them():
    import datetime as dt

    from agent.cli import render as r
    now = dt.datetime(2026, 12, 4, 12, 0, 0, tzinfo=dt.timezone.utc)
    backoff = {"type": "Warning", "reason": "BackOff", "message": "Back-off restarting failed container app",
               "count": 4, "firstTimestamp": "2026-12-04T11:50:00Z", "lastTimestamp": "2026-12-04T11:59:30Z",
               "source": {"component": "kubelet"}, "involvedObject": {"kind": "Pod", "name": "web"},
               "metadata": {"resourceVersion": "9"}}
    scheduled = {"type": "Normal", "reason": "Scheduled", "message": "Successfully assigned default/web to n1",
                 "count": 1, "firstTimestamp": "2026-12-04T11:49:00Z", "lastTimestamp": "2026-12-04T11:49:00Z",
                 "source": {"component": "default-scheduler"}, "involvedObject": {"kind": "Pod", "name": "web"},
                 "metadata": {"resourceVersion": "3"}}
    lines = r.events_section([backoff, scheduled], now).splitlines()
    assert lines[0] == "Events:"
    assert lines[2].split()[:3] == ["Normal", "Scheduled", "11m"]
    assert "30s (x4 over 10m)" in lines[3] and lines[3].rstrip().endswith("Back-off restarting failed container app")
    assert r.event_row(backoff, now) == ["30s", "Warning", "BackOff", "pod/web", "Back-off restarting failed container app"]
    assert r.events_section([], now) == "Events:               <none>"


def test_describe_says_what_was_accepted_but_cannot_be_honoured_here():
    from agent.cli.render import describe_pod

    pod = {"metadata": {"name": "p"}, "spec": {"containers": [], "dnsPolicy": "ClusterFirstWithHostNet",
                                               "subdomain": "db", "serviceAccountName": "reader"},
           "status": {}}
    text = describe_pod(pod).split("Accepted, not honoured:\n")[1].splitlines()
    assert text == ["  dnsPolicy ClusterFirstWithHostNet: there is no cluster DNS; the node's resolver is used",
                    "  subdomain db: there is no cluster DNS to serve the Pod's name in it",
                    "  serviceAccountName reader: there are no service accounts; the name is only given to the "
                    "downward API"]
    assert "Accepted, not honoured" not in describe_pod({"metadata": {"name": "q"}, "spec": {}, "status": {}})
