"""StageMetrics on real StageStats reports: names, totals, histograms, and odd input."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from streamrec.bus.messages import StageStats
from streamrec.web.metrics import StageMetrics, metric_name, split_figure


def _families(metrics: StageMetrics) -> dict[str, tuple[str, dict[tuple, float]]]:
    """name -> (type, {(sample name, sorted labels): value})."""
    text = metrics.exposition().decode()
    return {
        family.name: (family.type, {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples})
        for family in text_string_to_metric_families(text)
    }


def test_figure_names_become_metric_names_and_labels():
    assert split_figure("inference", "fps[front]") == ("fps", "front")
    assert split_figure("inference", "capture_to_detect[hall cam]") == ("capture_to_detect", "hall cam")
    assert split_figure("capture:front", "reconnects") == ("reconnects", "front")
    assert split_figure("events", "events_match") == ("events_match", "")
    assert split_figure("inference:2", "batches") == ("batches", "")  # a worker serves many sources
    assert metric_name("frames dropped/s") == "streamrec_frames_dropped_s"
    assert metric_name("9lives") == "streamrec_9lives"
    assert metric_name("---") == "streamrec_unnamed"


def test_counters_keep_the_latest_totals_and_the_histogram_every_sample():
    metrics = StageMetrics()
    metrics.update(StageStats("inference", 1, 100.0, counters={"faces": 5}, latencies={"detect": [0.01]}))
    metrics.update(StageStats("inference", 1, 101.0, counters={"faces": 9}, latencies={"detect": [0.02, -0.001]}))
    families = _families(metrics)
    labels = (("source", ""), ("stage", "inference"))
    assert families["streamrec_faces"] == ("counter", {("streamrec_faces_total", labels): 9.0})
    _, latency = families["streamrec_stage_latency_seconds"]
    detect = (("source", ""), ("stage", "inference"), ("step", "detect"))
    assert latency[("streamrec_stage_latency_seconds_count", detect)] == 3
    assert abs(latency[("streamrec_stage_latency_seconds_sum", detect)] - 0.03) < 1e-9  # negative: clamped to 0
    assert latency[("streamrec_stage_latency_seconds_bucket", tuple(sorted((*detect, ("le", "0.001")))))] == 1
    reported = families["streamrec_stage_last_report_timestamp_seconds"][1]
    assert reported == {("streamrec_stage_last_report_timestamp_seconds", (("stage", "inference"),)): 101.0}


def test_odd_names_and_clashing_names_never_break_the_page():
    """Odd values cannot reach here (a report is validated when built and when received, see
    tests/bus); odd names and a counter and a gauge of one name can."""
    metrics = StageMetrics()
    metrics.update(
        StageStats(
            "capture:front", 1, 1.0,
            counters={"reconnects": 2, "odd-name.x[cam 1]": 3, "both": 1},
            gauges={"both": 2.0, "fps[front]": 9.5},
            latencies={"decode": [0.004, -0.001]},
        )
    )
    families = _families(metrics)
    assert families["streamrec_odd_name_x"][1] == {("streamrec_odd_name_x_total", (("source", "cam 1"), ("stage", "capture:front"))): 3.0}
    assert families["streamrec_both"][0] == "counter"  # the gauge of the same name is left out
    assert families["streamrec_source_fps"][1] == {("streamrec_source_fps", (("source", "front"), ("stage", "capture:front"))): 9.5}
    decode = (("source", "front"), ("stage", "capture:front"), ("step", "decode"))
    assert families["streamrec_stage_latency_seconds"][1][("streamrec_stage_latency_seconds_count", decode)] == 2
