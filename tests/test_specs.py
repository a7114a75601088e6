"""The model specs and their registry: plain data, every field checked, every hook where the spec says."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PRESET_MODELS, TOKEN_ID_MODELS
from models import zoo
from models.zoo import preprocessors
from models.zoo.spec import LengthPolicy, ModelSpec

ROOT = Path(__file__).resolve().parents[1]
# What each model's module held before its spec did; a module that defines one again would be ignored silently.
OLD_MODULE_DEFAULTS = ("OPTIMIZER", "LEARNING_RATE", "BATCH_SIZE", "EARLY_STOPPING", "MAX_LEN_COVERAGE",
                       "MAX_LEN_CAP", "VOCAB_SIZE", "INFERENCE_BATCH_SIZE", "NEEDS_PRESET", "WARMUP_SHARE", "CLIPNORM")


def test_a_misspelt_or_unknown_field_is_an_error_not_a_default():
    with pytest.raises(TypeError, match="batch_siz"):
        ModelSpec("cnn", "a CNN", batch_siz=32)
    with pytest.raises(ValueError, match="optimizer 'adamx'"):
        ModelSpec("cnn", "a CNN", optimizer="adamx")
    with pytest.raises(ValueError, match="preprocessor"):
        ModelSpec("cnn", "a CNN", preprocessor="bpe")
    with pytest.raises(ValueError, match="coverage"):
        LengthPolicy(coverage=1.5, cap=10)
    with pytest.raises(dataclasses.FrozenInstanceError):
        zoo.spec("cnn").batch_size = 1


def test_the_test_matrices_are_the_registry():
    assert sorted(TOKEN_ID_MODELS + PRESET_MODELS) == sorted(zoo.MODELS)
    assert len(set(zoo.MODELS)) == len(zoo.SPECS)


@pytest.mark.parametrize("name", sorted(zoo.MODELS))
def test_every_spec_has_its_module_hooks_and_preprocessor_and_nothing_stale(name):
    spec = zoo.spec(name)
    module = spec.module()
    assert callable(module.build) and callable(module.search_space)
    assert not [constant for constant in OLD_MODULE_DEFAULTS if hasattr(module, constant)]
    assert preprocessors.for_spec(spec).name == spec.preprocessor
    assert spec.summary and spec.lengths.cap >= 16


def test_an_unknown_model_is_named_with_the_choices():
    from pipeline.errors import ReviewflowError

    with pytest.raises(ReviewflowError, match="unknown model 'cnnn'; choose from cnn, rnn"):
        zoo.spec("cnnn")


def test_the_registry_the_plan_and_the_help_import_no_tensorflow():
    code = ("import sys, cli, models.zoo, models.run_plan, models.zoo.preprocessors; "
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]


def test_defaults_text_names_the_models_that_differ():
    text = zoo.defaults_text("batch_size")
    common = max({spec.batch_size for spec in zoo.SPECS}, key=[spec.batch_size for spec in zoo.SPECS].count)
    assert text.startswith(f"{common};")
    for spec in zoo.SPECS:
        assert spec.batch_size == common or f"{spec.name}" in text
