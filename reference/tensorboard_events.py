#!/usr/bin/env python3
"""TensorBoard's own writer and reader against clipit's event files (docs/formats.md).

Needs only the `tensorboard` package (no TensorFlow, no torch), e.g. in a virtual
environment: `python3 -m venv VENV && VENV/bin/pip install tensorboard`.

    python reference/tensorboard_events.py write
        Writes Tests/FormatsTests/Fixtures/reference.tfevents with TensorBoard's protobuf
        classes and its TFRecord writer: fixed wall times and steps, a few scalars and one
        3x2 PNG image. FormatsTests.TensorBoardEventTests writes the same events with
        clipit's encoder and compares the bytes.

    python reference/tensorboard_events.py read PATH [--summary] [--metrics METRICS_JSONL]
        Reads an event file, or every event file of a folder (RUNDIR/tensorboard), with
        TensorBoard's EventAccumulator and prints what it found as JSON: every (step, tag,
        value) and every image's (step, tag, width, height, PNG size); --summary prints one
        line per tag instead. --metrics also checks that every number of the run's
        metrics.jsonl is there at its step, equal after rounding to float32, and exits
        non-zero otherwise.
"""
import argparse
import json
import os
import struct
import sys

from tensorboard.backend.event_processing import event_accumulator
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.record_writer import RecordWriter

FIXTURE = os.path.join("Tests", "FormatsTests", "Fixtures", "reference.tfevents")

# A 3x2 RGB PNG (red, green, blue / white, grey, black; filter 0, zlib level 9). The Swift
# test holds the same bytes.
PNG_3X2 = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000030000000208020000001216f14d00000016494441"
    "5478da63f8cfc0c000c1ffffff6f68680032014c4f077be479a7440000000049454e44ae426082")


def fixture_events():
    """The fixture's events: the file version, scalars (step 0, a zero, a negative value, a
    multi-byte step), two values in one event, and an image."""
    def scalars(wall_time, step, values):
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=t, simple_value=v) for t, v in values])
        return event_pb2.Event(wall_time=wall_time, step=step, summary=summary)

    image = summary_pb2.Summary.Image(height=2, width=3, colorspace=3, encoded_image_string=PNG_3X2)
    return [
        event_pb2.Event(wall_time=1700000000.25, file_version="brain.Event:2"),
        scalars(1700000000.5, 0, [("train/loss", 1.0986123)]),
        scalars(1700000001.5, 1, [("train/loss", 0.6931472), ("train/lr", 0.001)]),
        scalars(1700000002.75, 2, [("train/zero", 0.0), ("train/negative", -3.5)]),
        scalars(1700000003.0, 300, [("val/balanced_accuracy", 0.875)]),
        event_pb2.Event(wall_time=1700000004.125, step=300,
                        summary=summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag="val/confusion_matrix",
                                                                                     image=image)])),
    ]


def write(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        writer = RecordWriter(f)
        for event in fixture_events():
            writer.write(event.SerializeToString())
        writer.flush()
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def read(path):
    """(scalars, images) as lists of dicts, in step order per tag, tags sorted."""
    accumulator = event_accumulator.EventAccumulator(
        path, size_guidance={event_accumulator.SCALARS: 0, event_accumulator.IMAGES: 0})
    accumulator.Reload()
    tags = accumulator.Tags()
    scalars = [{"step": e.step, "tag": tag, "value": e.value}
               for tag in sorted(tags[event_accumulator.SCALARS]) for e in accumulator.Scalars(tag)]
    images = [{"step": e.step, "tag": tag, "width": e.width, "height": e.height,
               "png_bytes": len(e.encoded_image_string)}
              for tag in sorted(tags[event_accumulator.IMAGES]) for e in accumulator.Images(tag)]
    return scalars, images


def summary(scalars, images):
    lines = []
    for tag in sorted({s["tag"] for s in scalars}):
        found = [s for s in scalars if s["tag"] == tag]
        lines.append({"tag": tag, "count": len(found), "steps": [found[0]["step"], found[-1]["step"]],
                      "last": found[-1]["value"]})
    lines += [{"tag": i["tag"], "image": f'{i["width"]}x{i["height"]}', "step": i["step"]} for i in images]
    return lines


def check_metrics(scalars, metrics_path):
    """Every number of every record of metrics.jsonl (except `step`) as a scalar tagged
    "<type>/<key>" ("step" records: "train/<key>") at the record's step, rounded to float32."""
    found = {}
    for s in scalars:
        found.setdefault((s["tag"], s["step"]), []).append(s["value"])
    checked, problems = 0, []
    with open(metrics_path) as f:
        for line in f:
            record = json.loads(line)
            prefix = "train" if record["type"] == "step" else record["type"]
            for key, value in record.items():
                if key in ("step", "type") or isinstance(value, bool) or not isinstance(value, (int, float)):
                    continue
                tag, want = f"{prefix}/{key}", struct.unpack("f", struct.pack("f", value))[0]
                got = found.get((tag, record["step"]), [])
                checked += 1
                if got != [want]:
                    problems.append(f"{tag} at step {record['step']}: metrics.jsonl {value}, TensorBoard {got}")
    return checked, problems


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    writing = commands.add_parser("write", help="write the fixture with TensorBoard's writer")
    writing.add_argument("--out", default=FIXTURE)
    reading = commands.add_parser("read", help="read an event file or folder with TensorBoard's reader")
    reading.add_argument("path")
    reading.add_argument("--summary", action="store_true", help="one line per tag instead of every value")
    reading.add_argument("--metrics", help="a metrics.jsonl whose every number must be found")
    args = parser.parse_args()

    if args.command == "write":
        write(args.out)
        return
    if not os.path.exists(args.path):
        sys.exit(f"{args.path}: no such file or folder")
    scalars, images = read(args.path)
    if args.summary:
        for line in summary(scalars, images):
            print(json.dumps(line))
    else:
        print(json.dumps({"scalars": scalars, "images": images}, indent=1))
    if args.metrics:
        checked, problems = check_metrics(scalars, args.metrics)
        print(f"metrics.jsonl: {checked} numbers checked, {len(problems)} missing or different")
        for problem in problems[:20]:
            print("  " + problem)
        if problems or checked == 0:
            sys.exit(1)


if __name__ == "__main__":
    main()
