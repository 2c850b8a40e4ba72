"""A broken pipelines file fails at load with one line: the file, the line, the field path and the rule."""

from __future__ import annotations

import pytest

from relay_core.pipelines import PACKAGED, PipelineConfigError, load_pipelines

PIPELINE = "model_pose12"


def broken(tmp_path, old: str, new: str) -> str:
    """The message of loading the packaged file with ``old`` (first occurrence) replaced by ``new``."""
    text = PACKAGED.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "pipelines.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(PipelineConfigError) as caught:
        load_pipelines(path)
    return str(caught.value)


@pytest.mark.parametrize(
    "old, new, message",
    [
        # the unknown key is named, not the required key its typo leaves missing
        ("deadline_s = 1800", "deadine_s = 1800", f"pipelines.toml:16: pipelines.{PIPELINE}.deadine_s: unknown field"),
        ("deadline_s = 1800", "deadline_s = 0", "deadline_s: input should be greater than or equal to 1"),
        ("deadline_s = 1800", 'deadline_s = "1800"', "deadline_s: input should be a valid integer"),
        ('vendor = "runninghub"', 'vendor = "x"', f":13: pipelines.{PIPELINE}.vendor: input should be 'runninghub'"),
        ('kind = "workflow"', 'kind = "flow"', "kind: input should be 'workflow' or 'ai-app'"),
        ('types = ["jpeg"]', 'types = ["bmp"]', "outputs.types: unknown file types ['bmp']"),
        ('types = ["jpeg"]', "types = []", "outputs.types: list should have at least 1 item, not 0"),
        ("factor = 1.5", "factor = 0.5", f":21: pipelines.{PIPELINE}.poll.factor: input should be greater than or"),
        ("base_s = 2,", "base_s = 0,", "poll.base_s: input should be greater than 0"),
        ('field_name = "text", ', "", f"pipelines.{PIPELINE}.nodes[1].field_name: field required"),
        ('value = "{input}"', 'value = "x"', f"pipelines.{PIPELINE}.nodes: no node takes '{{input}}'"),
        ("outputs = {", "outputs = 5 #", f"pipelines.{PIPELINE}.outputs: not a table"),
        ('# "input/vip-" = "promo_poster"', '"input/vip-" = "nope"', "routes.input/vip-: route 'input/vip-' names"),
    ],
)
def test_a_broken_file_names_the_line_the_field_and_the_rule(tmp_path, old, new, message):
    assert message in broken(tmp_path, old, new)


def test_the_packaged_file_loads_typed():
    pipeline = load_pipelines().get(PIPELINE)
    assert pipeline.name == PIPELINE and pipeline.kind == "workflow" and pipeline.input_types == ("jpeg", "png", "webp")
    assert type(pipeline.poll.first_s) is float and pipeline.poll.first_s == 3.0  # TOML's 3, as a float
    assert pipeline.outputs.file_name(3) == "frame_03.jpg" and pipeline.nodes[0].value == "{input}"
