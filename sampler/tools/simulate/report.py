"""The report of `tail-sampler simulate`: a table per config (and a comparison of two), or JSON."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sampler.tools.simulate.read import TraceSet
from sampler.tools.simulate.run import SimulationResult, overlap


def _rate(part: int, whole: int) -> str:
    return f"{100 * part / whole:.2f}%" if whole else "-"


def _table(rows: list[list[str]], text_columns: int) -> list[str]:
    """The first `text_columns` columns left-aligned, the numbers right-aligned."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(width) if column < text_columns else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def _input_line(traces: TraceSet) -> str:
    line = f"input: {traces.path}: {traces.lines} requests, {len(traces.traces)} traces, {traces.spans} spans"
    if traces.rejected_spans:
        line += f"; {traces.rejected_spans} spans with an invalid trace or span ID skipped"
    return line


_LEGEND = [
    "kept: traces the policy was the first to sample (how the daemon attributes kept traces);",
    "matched: traces it sampled (a drop policy: dropped) where it was evaluated. Rates are of all traces.",
    "Adjusted counts: a trace kept with probability p stands for 1/p traces (tailsampling.sample_rate);",
    "the estimate's ± is one standard error, estimated from the kept traces.",
]


def _notes(results: list[SimulationResult]) -> list[str]:
    notes = []
    for label, result in zip("AB" if len(results) == 2 else [""] * len(results), results, strict=True):
        prefix = f"{label}: " if label else ""
        notes += [f"{prefix}note: {note}" for note in result.notes]
        skipped = [c.name for c in result.policies if c.evaluated_traces < result.traces]
        if skipped:
            notes.append(
                f"{prefix}not evaluated on every trace (sample_on_first_match, or a drop came first): "
                + ", ".join(skipped)
            )
        for count in result.policies:
            if count.errors:
                notes.append(f"{prefix}policy {count.name!r} raised on {count.errors} traces (counted as not sampled)")
    return notes


def _estimate_line(result: SimulationResult) -> str:
    return (
        f"spans estimated from the kept spans' adjusted counts: {result.estimated_spans:.0f} "
        f"± {result.estimate_standard_error:.0f} (true: {result.spans}, {100 * result.estimate_error:+.2f}%)"
    )


def format_report(traces: TraceSet, results: list[SimulationResult]) -> str:
    """A table of the one config's policies, or, for two configs, both side by side and their overlap."""
    if len(results) == 2:
        return _format_comparison(traces, *results)
    lines = [_input_line(traces)]
    for result in results:
        total = result.traces
        rows = [["policy", "type", "kept", "kept spans", "kept rate", "matched", "matched rate"]]
        for count in result.policies:
            rows.append(
                [
                    count.name,
                    count.type,
                    str(count.kept_traces),
                    str(count.kept_spans),
                    _rate(count.kept_traces, total),
                    str(count.matched_traces),
                    _rate(count.matched_traces, total),
                ]
            )
        rows.append(
            ["total", "", str(result.kept_traces), str(result.kept_spans), _rate(result.kept_traces, total), "", ""]
        )
        summary = (
            f"kept {result.kept_traces} of {total} traces ({_rate(result.kept_traces, total)}), "
            f"{result.kept_spans} of {result.spans} spans ({_rate(result.kept_spans, result.spans)})"
        )
        if result.dropped_traces:
            summary += f"; {result.dropped_traces} traces dropped by drop policies"
        lines += [f"config: {result.config}", "", *_table(rows, 2), "", summary, _estimate_line(result)]
    return "\n".join([*lines, *_notes(results), "", *_LEGEND])


def _format_comparison(traces: TraceSet, first: SimulationResult, second: SimulationResult) -> str:
    total = first.traces
    names = [count.name for count in first.policies]
    names += [count.name for count in second.policies if count.name not in names]
    by_name = [{count.name: count for count in result.policies} for result in (first, second)]
    rows = [["policy", "A kept", "A rate", "A matched", "B kept", "B rate", "B matched"]]
    for name in names:
        row = [name]
        for counts in by_name:
            count = counts.get(name)
            if count is None:
                row += ["-", "", "-"]
            else:
                row += [str(count.kept_traces), _rate(count.kept_traces, total), str(count.matched_traces)]
        rows.append(row)
    traces_row, spans_row = ["total"], ["spans"]
    for result in (first, second):
        traces_row += [str(result.kept_traces), _rate(result.kept_traces, total), ""]
        spans_row += [str(result.kept_spans), _rate(result.kept_spans, result.spans), ""]
    rows += [traces_row, spans_row]
    both = overlap(first, second)
    lines = [
        _input_line(traces),
        f"A: {first.config}",
        f"B: {second.config}",
        "",
        *_table(rows, 1),
        "",
        f"traces kept by A only: {both.only_first}, by B only: {both.only_second}, "
        f"by both: {both.both}, by neither: {both.neither}",
        f"A: {_estimate_line(first)}",
        f"B: {_estimate_line(second)}",
        *_notes([first, second]),
        "",
        *_LEGEND,
    ]
    return "\n".join(lines)


def report_dict(traces: TraceSet, results: list[SimulationResult]) -> dict[str, Any]:
    """The machine-readable form of `format_report` (for --json)."""
    document: dict[str, Any] = {
        "input": {
            "path": traces.path,
            "requests": traces.lines,
            "traces": len(traces.traces),
            "spans": traces.spans,
            "rejected_spans": traces.rejected_spans,
        },
        "results": [
            {
                "config": result.config,
                "traces": result.traces,
                "spans": result.spans,
                "kept_traces": result.kept_traces,
                "kept_spans": result.kept_spans,
                "keep_rate": result.keep_rate,
                "span_keep_rate": result.span_keep_rate,
                "dropped_traces": result.dropped_traces,
                "estimated_spans": result.estimated_spans,
                "estimated_spans_standard_error": result.estimate_standard_error,
                "policies": [asdict(count) for count in result.policies],
                "notes": result.notes,
            }
            for result in results
        ],
    }
    if len(results) == 2:
        document["comparison"] = asdict(overlap(*results))
    return document
