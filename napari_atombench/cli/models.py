"""``atombench models``: the registered models and the user's adapted ones."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("models", help="list the registered models and their weights")
    parser.set_defaults(func=run_models)


def run_models(args: argparse.Namespace) -> int:
    from ..models.registry import list_adapted_models, list_models, user_models_dir

    rows = list_models()
    width = max(len(r["name"]) for r in rows)
    print(f"{'name':<{width}}  {'family':<10}  {'architecture':<16}  {'cached':<6}  weights")
    for r in rows:
        cached = "yes" if r["cached"] else "no"
        print(f"{r['name']:<{width}}  {r['family']:<10}  {r['architecture']:<16}  {cached:<6}  {r['weights']}")
    adapted = list_adapted_models()
    if adapted:
        print(f"\nadapted models in {user_models_dir()} (use by name with --model):")
    for r in adapted:
        print(f"{r['name']}  base {r['base_model']}  image {r['image_name']}  validation F1 {r['validation_f1']}  {r['path']}")
    return 0
