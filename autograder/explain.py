"""The likely cause of a common error raised by the student's code, in the student's terms.

A crash message quotes the exception and the line (:class:`~autograder.failures.StudentError`); for the
errors that students of this lab meet most (shape mismatches between layers, arguments in the wrong
order, a deleted line, a sampling weight that is not a distribution, …) :func:`likely_cause` adds what
the error means for their code. Each rule matches the error's own text (and, for a size mismatch, what the quoted line uses), so a cause is named only
when the evidence says so; the numbers and names it repeats come from that (already budgeted)
message: digits and identifiers of at most :data:`NAME_CHARS` characters, nothing else.
"""
from __future__ import annotations

import math
import re
from typing import Callable

from autograder.i18n import Message, t, verbatim

NAME_CHARS = 40
Rule = tuple[str, re.Pattern, Callable[[re.Match, str], Message]]


def _rule(error: str, pattern: str, cause: Callable[[re.Match, str], Message]) -> Rule:
    return error, re.compile(pattern), cause


def _product(sizes: str) -> int:
    return math.prod(int(size) for size in re.findall(r"\d+", sizes))


def _name(match: re.Match, group: int | str) -> str:
    return match.group(group)[:NAME_CHARS]


def _count_hint(where: str) -> Message:
    """For a size mismatch on a line that uses counts: bincount's length (the line quoted by the crash)."""
    if "count" not in where:
        return verbatim("")
    return t("（この行の数え上げ: torch.bincount は minlength= を指定しないと 最大ラベル + 1 個しか数を返しません）",
             " (this line uses counts: torch.bincount returns only max(label) + 1 of them unless minlength= is given)")


def _missing_attribute(kind: str, attribute: str) -> Message:
    """The cause of "'kind' object has no attribute 'attribute'", by what kind of object it was."""
    if kind == "NoneType":
        return t("値が None です。関数（または forward）に return が抜けていませんか？",
                 "a value is None: does a function (or forward) lack a `return`?")
    if kind in ("float", "int", "bool"):
        return t("テンソルが必要なところで Python の数値（{type}）が使われています（.{attribute} はテンソルのメソッドです）。"
                 "式のテンソルの項が抜けているか、.item() で数値にしていませんか？",
                 "a plain Python number ({type}) is used where a tensor is needed (.{attribute} is a tensor method): "
                 "is a tensor term of the expression missing, or did .item() turn it into a number?",
                 type=kind, attribute=attribute)
    if kind in ("tuple", "list"):
        return t("テンソルが必要なところで {type} が使われています。返されたタプルから正しい要素を取り出していますか"
                 "（例: encoded, decoded = model(x)）？",
                 "a {type} is used where a tensor is needed: does the code take the right element of a returned "
                 "tuple (e.g. encoded, decoded = model(x))?", type=kind)
    return t("{type} には属性 `{attribute}` がありません。意図したものとは別のオブジェクトを参照しています（例: "
             "nn.Sequential の添字の間違い、別の種類の層）",
             "a {type} has no attribute `{attribute}`: the code reached another object than intended (e.g. a wrong "
             "index into an nn.Sequential, or a layer of another type)", type=kind, attribute=attribute)


RULES: tuple[Rule, ...] = (
    _rule("NameError", r"name '([A-Za-z_]\w*)' is not defined", lambda m, where: t(
        "`{name}` を代入する行より前に `{name}` を使っています。`{name}` を計算する行が消えていたり、綴りが違ったり、"
        "最初に使う行より後ろに置かれていたりしませんか？",
        "`{name}` is read before any line assigns it: was the line that computes `{name}` deleted, misspelt or "
        "placed after its first use?", name=_name(m, 1))),
    _rule("RuntimeError", r"mat1 and mat2 shapes cannot be multiplied \((\d+)x(\d+) and (\d+)x(\d+)\)", lambda m, where: t(
        "行列積（ふつうは nn.Linear 層）が {expected} 個の入力特徴を期待していますが、{got} 個が届いています。その層の "
        "in_features（nn.Linear(in_features, out_features)）を、届く値の大きさ（nn.Flatten の後ならチャネル数 × 高さ × 幅）"
        "と照らし合わせてください",
        "a matrix product (usually an nn.Linear layer) expects {expected} input features but receives {got}: check "
        "that layer's in_features (nn.Linear(in_features, out_features)) against the size of what reaches it (after "
        "nn.Flatten: channels × height × width)", expected=m.group(3), got=m.group(2))),
    _rule("RuntimeError", r"unflatten: Provided sizes \[([\d, ]+)\] don't multiply up to the size of dim \d+ \((\d+)\)",
          lambda m, where: t("nn.Unflatten は 1 枚あたり ({sizes}) = {product} 個の値を期待していますが、{got} 個しか届いて"
                      "いません。その直前の層は {product} 個の特徴を出力する必要があります",
                      "nn.Unflatten reshapes to ({sizes}) = {product} values per image but receives {got}: the layer "
                      "before it must output {product} features",
                      sizes=m.group(1), product=_product(m.group(1)), got=m.group(2))),
    _rule("RuntimeError", r"weight of size \[\d+, (\d+), \d+, \d+\], expected input\[[\d, ]+\] to have \d+ channels, "
                          r"but got (\d+) channels", lambda m, where: t(
        "in_channels={expected} で作った畳み込み層に {got} チャネルの入力が届いています。畳み込み層の in_channels"
        "（nn.Conv2d(in_channels, out_channels, kernel_size)）は入力のチャネル数と等しくなければなりません",
        "a convolution built with in_channels={expected} receives {got} channels: its in_channels "
        "(nn.Conv2d(in_channels, out_channels, kernel_size)) must equal the channels of its input",
        expected=m.group(1), got=m.group(2))),
    _rule("TypeError", r"tuple of ints,\s?but (?:found element of type|got) float", lambda m, where: t(
        "層の大きさが float になっています（Python の / は常に float を返します）。大きさは // か int(...) で"
        "計算してください",
        "a layer size is a float (Python's / always gives a float): compute sizes with // or int(...)")),
    _rule("TypeError", r"(\w+)\(\): argument '(\w+)' \(position (\d+)\) must be Tensor, not (float|int|bool)", lambda m, where: t(
        "torch.{function} の `{argument}` にテンソルではなく Python の数値が渡されています。その式にあるはずのテンソル"
        "の項が抜けていませんか？",
        "torch.{function} received a plain Python number as `{argument}`, not a tensor: the tensor that belongs in "
        "that expression is missing", function=_name(m, 1), argument=_name(m, 2))),
    _rule("TypeError", r"(\w+)\(\): argument '(\w+)' \(position (\d+)\) must be (\w+), not (\w+)", lambda m, where: t(
        "{function} の引数の順序か種類が違います。{position} 番目の引数（`{argument}`）は {expected} でなければなりませんが、"
        "{got} が渡されています",
        "{function}'s arguments are in the wrong order or of the wrong kind: argument {position} (`{argument}`) must "
        "be {expected}, not {got}", function=_name(m, 1), argument=_name(m, 2), position=m.group(3),
        expected=_name(m, 4), got=_name(m, 5))),
    _rule("RuntimeError", r"index_add_\(\): Number of indices \((\d+)\) should be equal to source\.size\(dim\): "
                          r"\((\d+)\)", lambda m, where: t(
        "index_add_(dim, index, source) には source の行ごとに 1 つのインデックスが必要ですが、{rows} 行に対して "
        "{indices} 個です。k-means のラベルは点ごとに 1 つ、(点 × 重心) の距離行列の argmin(dim=1) です"
        "（dim を指定しない argmin は 1 個、dim=0 なら重心ごとに 1 個を返します）",
        "index_add_(dim, index, source) needs one index per row of source; it got {indices} for {rows} rows. In "
        "k-means the labels have one entry per point: argmin(dim=1) of the (points × centroids) distances (argmin "
        "without dim= gives a single index, dim=0 one per centroid)", indices=m.group(1), rows=m.group(2))),
    _rule("IndexError", r"index_add_\(\): Index is supposed to be a vector, but got dim: (\d+)", lambda m, where: t(
        "index_add_(dim, index, source) の index（2 番目の引数）は整数ラベルの 1 次元ベクトルでなければなりませんが、"
        "{dims} 次元になっています。index と source が入れ替わっていませんか？",
        "index_add_(dim, index, source): the index (second argument) must be a 1-D vector of integer labels, but "
        "it has {dims} dimensions: are index and source swapped?", dims=m.group(1))),
    _rule("RuntimeError", r"probability tensor contains either `inf`, `nan` or element < 0", lambda m, where: t(
        "torch.multinomial に負・inf・NaN の重みが渡されています。k-means++ の重みは、最も近い選択済みの中心までの"
        "距離の 2 乗 D(x)² で、負になることはありません",
        "torch.multinomial got a weight that is negative, inf or NaN: k-means++ weights each point by D(x)², its "
        "squared distance to the nearest chosen centre, which is never negative")),
    _rule("RuntimeError", r"invalid multinomial distribution \(sum of probabilities <= 0\)", lambda m, where: t(
        "torch.multinomial の重みがすべて 0 です。k-means++ の重み D(x)² は、すべての点が選択済みの中心と一致するとき"
        "（異なる点の数がクラスタ数より少ないとき）に 0 になります。その場合も中心を選べるようにしてください"
        "（例: 重みに小さな定数を足す）",
        "every torch.multinomial weight is 0: k-means++'s weights D(x)² are all 0 when every point coincides with a "
        "chosen centre (fewer distinct points than clusters); a centre must still be picked then (e.g. add a tiny "
        "constant to the weights)")),
    _rule("RuntimeError", r"cannot sample n_sample <= 0 samples", lambda m, where: t(
        "torch.multinomial に 0 個のサンプルを要求しています。2 番目の引数は引く個数です（中心は 1 つずつ選びます）",
        "torch.multinomial was asked for 0 samples: its second argument is how many to draw (one centre at a time)")),
    _rule("RuntimeError", r"clamp: At least one of 'min' or 'max' must not be None", lambda m, where: t(
        "clamp() には下限か上限が必要です（clamp(min=…) または clamp(max=…)）",
        "clamp() needs a bound: clamp(min=…) or clamp(max=…)")),
    _rule("RuntimeError", r"The size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\) at non-singleton "
                          r"dimension (\d+)", lambda m, where: t(
        "大きさの違うテンソル（{a} と {b}）を次元 {dim} で組み合わせています。どちらかの長さが違います{example}",
        "two tensors of different sizes ({a} and {b}) are combined along dimension {dim}: one of them has the wrong "
        "length{example}", a=m.group(1), b=m.group(2), dim=m.group(3), example=_count_hint(where))),
    _rule("RuntimeError", r"where expected condition to be a boolean tensor, but got a tensor with dtype (\w+)",
          lambda m, where: t("torch.where(condition, x, y) の最初の引数は真偽値の条件でなければなりませんが、{dtype} の"
                      "テンソルになっています。引数の順序が違いませんか？",
                      "torch.where(condition, x, y): the first argument must be the boolean condition, here it is "
                      "a {dtype} tensor: are the arguments in the wrong order?", dtype=_name(m, 1))),
    _rule("AttributeError", r"'([A-Za-z_]\w*)' object has no attribute '([A-Za-z_]\w*)'",
          lambda m, where: _missing_attribute(_name(m, 1), _name(m, 2))),
    _rule("RuntimeError", r"Expected all tensors to be on the same device", lambda m, where: t(
        "テンソルが別々のデバイスにあります。新しく作るテンソルは入力と同じデバイスに置いてください（device=x.device）",
        "tensors are on different devices: create new tensors on the input's device (device=x.device)")),
    _rule("RuntimeError", r"element 0 of tensors does not require grad and does not have a grad_fn", lambda m, where: t(
        "損失が計算グラフから切り離されています（.detach()、.item()、torch.no_grad()、numpy を経由していませんか？）",
        "the loss is cut off from the graph (.detach(), .item(), torch.no_grad() or a numpy round trip?)")),
    _rule("RuntimeError", r"all elements of input should be between 0 and 1", lambda m, where: t(
        "binary_cross_entropy の入力が [0, 1] の範囲にありません。デコーダの最後に nn.Sigmoid() を置き、"
        "(reconstructed, x) の順に渡してください",
        "binary_cross_entropy's input is not in [0, 1]: end the decoder with nn.Sigmoid() and pass "
        "(reconstructed, x) in that order")),
)


def likely_cause(error: str, message: str, where: str = "") -> Message | None:
    """What ``error: message`` (raised at ``where``, the quoted cell and line) most likely means for the student's
    code; None when no rule matches."""
    for name, pattern, cause in RULES:
        if error == name:
            match = pattern.search(message)
            if match:
                return cause(match, where)
    return None
