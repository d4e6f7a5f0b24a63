"""The log digest a failed cluster test shows: telling lines only, the newest per node."""

from cluster.log_digest import digest


def test_only_telling_lines_are_kept_the_newest_last(tmp_path):
    (tmp_path / "n1").mkdir()
    (tmp_path / "n2").mkdir()
    (tmp_path / "n1" / "agentd.log").write_text("\n".join([
        "node=n1 level=info logger=agent.gossip event=member_updated member=n2 inc=1",
        "node=n1 level=warning logger=agent.agentd.assignments event=fenced silent_s=10.1 pods_stopped=2",
        "node=n1 level=info logger=agent.runtime event=desired_applied start=1 stop=0 replace=0 total=1",
        "node=n1 level=debug logger=agent.raft event=append",
        "node=n1 level=info logger=agent.runtime.pod event=container_started pod=default/a",
    ]) + "\n")
    (tmp_path / "n2" / "agentd.log").write_text("".join(
        f"node=n2 level=error logger=x event=boom i={i}\n" for i in range(40)))
    text = digest(tmp_path, lines_per_node=25)
    n1 = text.split("--- n2")[0]
    assert "event=fenced" in n1 and "desired_applied" in n1 and "container_started" in n1
    assert "member_updated" not in n1 and "level=debug" not in n1
    n2 = text.split("--- n2")[1].splitlines()[1:]
    assert len(n2) == 25 and n2[-1].endswith("i=39") and n2[0].endswith("i=15")
