"""config/README.md documents every key the code accepts."""

from pathlib import Path

import pytest

from atdr.config import AugmentConfig, DataConfig, ModelConfig, OptimConfig, TrainConfig
from atdr.workflow import config_schema

README = (Path(__file__).resolve().parents[1] / "config" / "README.md").read_text()


@pytest.mark.parametrize("section, model", [("model", ModelConfig), ("data", DataConfig), ("augment", AugmentConfig),
                                            ("optim", OptimConfig), ("train", TrainConfig)])
def test_every_run_config_key_is_documented(section, model):
    missing = [k for k in model.model_fields if f"`{section}.{k}`" not in README]
    assert not missing, f"config/README.md does not document {missing}"


def test_every_workflow_key_is_documented():
    schema = config_schema()
    keys = list(schema["properties"])
    keys += [f"datasets.<name>.{k}" for k in schema["properties"]["datasets"]["additionalProperties"]["properties"]]
    missing = [k for k in keys if f"`{k}" not in README]
    assert not missing, f"config/README.md does not document {missing}"
