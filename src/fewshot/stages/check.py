"""Stage `check`: validate the whole params.yaml before anything else can run on it.

Usage: python -m fewshot.stages.check       (run by `dvc repro` whenever any key of params.yaml changes)
Params: all of params.yaml. Writes reports/check.json, always with the same content: every train@
stage depends on it, so none runs before the params passed (a `models` key is part of its shell
command; a bad option would otherwise be found only after DVC removed the old model).

Every stage validates params.yaml when it starts, but `dvc exp run -S trian.lr=0.1` changes no key
that a stage lists, so without this stage DVC would run nothing and report success. This stage
depends on every key, so a misspelled or ill-typed override fails here with the valid names; it
also checks what spans sections: each model's method, backbone and options, and that every frozen
backbone a model uses is cached by `embed`.
"""

from __future__ import annotations

from fewshot import params as params_lib
from fewshot import paths
from fewshot.backbones import BACKBONES, PRETRAINED
from fewshot.errors import UserError, one_line_errors
from fewshot.fileio import write_json
from fewshot.methods import METHODS
from fewshot.text import check_templates


def check(params: params_lib.Params) -> None:
    """Raise `UserError` on the first cross-section problem of already-typed params."""
    check_templates(params.embed.text_templates)
    for name in params.embed.backbones:
        BACKBONES.get(name)
    if not params.models:
        raise UserError("params 'models' is empty; add at least one entry (see docs/methods.md)")
    for name, entry in params.models.items():
        cls = METHODS.get(entry.method)
        BACKBONES.get(entry.backbone)
        options = params_lib.from_dict(entry.options, cls.Options, prefix=f"models.{name}.options.")
        try:
            cls.check_entry(options, entry.head_dim, entry.backbone in PRETRAINED)
        except UserError as err:
            raise UserError(f"models.{name}: {err}") from None
        if entry.freeze and entry.backbone in PRETRAINED and entry.backbone not in params.embed.backbones:
            raise UserError(f"models.{name} uses frozen backbone '{entry.backbone}', which "
                            f"embed.backbones ({', '.join(params.embed.backbones)}) does not cache; "
                            "add it there")
        if entry.episodes < 0 or entry.train_n_way < 2 or entry.lr <= 0:
            raise UserError(f"models.{name}: episodes={entry.episodes} must be >= 0, "
                            f"train_n_way={entry.train_n_way} >= 2 and lr={entry.lr} > 0")


@one_line_errors
def main() -> None:
    params = params_lib.load()
    check(params)
    write_json(paths.CHECK, {"params.yaml": "valid"})
    print(f"check: params.yaml is valid ({len(params.models)} models)")


if __name__ == "__main__":
    main()
