"""Training checks shared by vae_training, conv_autoencoder and conv_vae.

The student's model is trained once per question by the grader's loop (budget from questions.toml),
through the train → encode → decode pipeline of :mod:`autograder.bottleneck` (the ``training_plan``
fixture), and the held-out score of the images decoded from its latents is compared with the
calibrated limit.
"""
from __future__ import annotations

from autograder import config
from autograder.bottleneck import TrainedModel, held_out
from autograder.pictures import add_trained
from autograder.i18n import t, verbatim
from autograder.latents import SHIFT, smoothness
from autograder.oracle import expect
from autograder.scoring import held_out_score

PLAUSIBLE_FRACTION = 0.5  # a score below half the best reference run is not believed
CONSTANT_FRACTION = 0.05  # decoded images that vary less than this share of the targets' spread ignore z
SMOOTHNESS_LIMIT = 0.3  # latents.smoothness: the reference 0.04-0.05; a decoder that reads a code out of z about 1


def check_score(trained: TrainedModel, question: str, calibration: dict, pictures: list[dict] | None = None) -> None:
    """Fail unless the held-out score of the images decoded from the model's latents is within the limit.

    ``pictures``: where to add this model's pictures for the feedback page (drawn first, pass or fail).
    """
    budget = config.budgets()[question]
    x_eval, labels = held_out(budget["dataset"], budget["n_eval"])
    if pictures is not None:
        add_trained(pictures, question, budget["model"], x_eval, labels, trained)
    spread, target_spread = trained.images.double().std(dim=0).mean().item(), x_eval.double().std(dim=0).mean().item()
    expect(spread >= CONSTANT_FRACTION * target_spread,
           t("{model}.decoder が z を無視しています。異なる 2,000 個の潜在変数からデコードした画像がほとんど同じです"
             "（画素値のばらつきは平均 {spread:.3g}、評価用画像では {target:.3g}）。デコーダの出力は z に依存しなければ"
             "なりません（出力が一定になる層、例えば入力がすべて 0 以下の ReLU が Sigmoid の前にある、あるいは z ではなく "
             "forward が保存しておいたものから画像を作っている、など）",
             "{model}.decoder ignores z: the images decoded from 2,000 different latents are almost identical "
             "(their pixels vary by {spread:.3g} on average; the held-out images by {target:.3g}). The decoder's "
             "output must depend on z (e.g. a layer with a constant output, such as a ReLU whose inputs are all "
             "≤ 0 in front of the Sigmoid, or an image made from something forward stored instead of z)",
             model=budget["model"], spread=spread, target=target_spread))
    if trained.shifted_images is not None:
        change = smoothness(trained.images, trained.shifted_images)
        expect(change <= SMOOTHNESS_LIMIT,
               t("{model}.decoder が z に対してなめらかではありません。z を潜在変数のばらつきの {shift:.0%} だけ動かすと、"
                 "画像が画像どうしの違いの {change:.0%} も変わります（2 次元の潜在空間のデコーダなら {limit:.0%} 以下）。"
                 "デコーダは z の細かい桁を符号として読むのではなく、z の連続な関数でなければなりません",
                 "{model}.decoder is not smooth in z: moving z by {shift:.0%} of the latents' spread changes the image "
                 "by {change:.0%} of how much the images differ from one another (a decoder of a 2-D latent space "
                 "stays under {limit:.0%}). The decoder must be a continuous function of z, not read a code out of "
                 "its digits", model=budget["model"], shift=SHIFT, change=change, limit=SMOOTHNESS_LIMIT))
    score = held_out_score(budget["kind"], trained.images, trained.latents, x_eval, budget["model"])
    figures = calibration["questions"][question]
    metric = verbatim("MSE") if budget["kind"] == "ae" else t("1 画像あたりの損失", "loss per image")
    # A 2-D bottleneck cannot get anywhere near a perfect score.
    expect(score >= PLAUSIBLE_FRACTION * figures["min"],
           t("評価用データでの {metric}（{score:.4g}）が、2 次元の潜在変数としてはありえないほど良い値です（模範解答の"
             "最良の実行でも {best:.4g}）。再構成が潜在変数から作られていないようです",
             "the held-out {metric} ({score:.4g}) is implausibly good for a 2-D latent (the best reference run reaches "
             "{best:.4g}): the reconstruction does not seem to come from the latent",
             metric=metric, score=score, best=figures["min"]))
    expect(score <= figures["threshold"],
           t("採点側の学習（{n_train} 枚の画像で {epochs} エポック）の後、モデルの潜在変数からデコードした画像の評価用"
             "データでの {metric} は {score:.4g} で、基準値 {limit:.4g} を超えています（模範解答は {seeds} 個のシードで "
             "{mean:.4g} ± {std:.2g}、平均画像を出力するだけなら {baseline:.4g}）",
             "after the grader's training budget ({epochs} epochs on {n_train} images) the held-out "
             "{metric} of the images decoded from the model's latents is {score:.4g}; the limit is "
             "{limit:.4g} (the reference solution reaches {mean:.4g} ± {std:.2g} "
             "over {seeds} seeds; predicting the mean image gives {baseline:.4g})",
             epochs=budget["epochs"], n_train=budget["n_train"], metric=metric, score=score,
             limit=figures["threshold"], mean=figures["mean"], std=figures["std"], seeds=len(figures["values"]),
             baseline=figures["baseline"]))
