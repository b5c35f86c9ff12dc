"""Volume list and prune filters (layer: engine): dockerd's matching of C{name=}, C{label=},
C{label!=} and boolean filters such as C{dangling=} and C{all=}."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from pyd.core.errors import InvalidParameter


def _match_kv(values: Sequence[str], labels: Mapping[str, str] | None) -> bool:
    if not values:
        return True
    if not labels:
        return False
    for value in values:
        k, has, v = value.partition("=")
        if k not in labels:
            return False
        if has and labels[k] != v:
            return False
    return True


def _name_match(values: Sequence[str], name: str) -> bool:
    if not values or name in values:
        return True
    for pattern in values:
        try:
            if re.search(pattern, name):
                return True
        except re.error:
            continue
    return False


def _bool_filter(filters: Mapping[str, list[str]], key: str) -> bool | None:
    if key not in filters:
        return None
    values = filters[key]
    is_false = "0" in values or "false" in values
    is_true = "1" in values or "true" in values
    if is_false == is_true:
        raise InvalidParameter(f"invalid filter '{key}=[{' '.join(values)}]'")
    return is_true


def _label_filters_match(
    filters: Mapping[str, list[str]], labels: Mapping[str, str] | None
) -> bool:
    if not _match_kv(filters.get("label", []), labels):
        return False
    neg = filters.get("label!", [])
    return not (neg and _match_kv(neg, labels))
