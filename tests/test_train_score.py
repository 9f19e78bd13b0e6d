"""The quick generation score during training: recorded every score_every cycles from its
own random stream (training stays bit-identical with and without it), equal to a fresh
score of the checkpointed model, kept across an interrupted and resumed run, and written to
train.json and the loss plot. Tiny models, real numerics; seconds."""
import json

import numpy as np
import pytest

from thermohw import InputError
from thermohw.data import Digits
from thermohw.train import TrainConfig, TrainState, new_state, quick_score, train


def _digits():
    rng = np.random.default_rng(0)
    p = rng.normal(size=(2, 4))
    return Digits((p - p.mean(1, keepdims=True)) / p.std(1, keepdims=True), [0, 1], (2, 2), "test")


def _cfg(cycles, **kw):
    return TrainConfig(cycles=cycles, t_f=0.05, dt=1e-3, seed=3, checkpoint_every=1, **kw)


def test_scores_do_not_change_training_and_match_a_fresh_score(tmp_path):
    plain = train(new_state(_digits(), _cfg(9, score_every=0), n_hidden=3), progress=False)
    assert plain.scores.shape == (0, 4)
    seen = {}
    scored = train(new_state(_digits(), _cfg(9, score_every=4, score_runs=6), n_hidden=3), progress=False,
                   on_cycle=lambda s: seen.setdefault(s.cycle, s.computer))
    np.testing.assert_array_equal(scored.computer.J, plain.computer.J)      # bit-identical training
    np.testing.assert_array_equal(scored.losses, plain.losses)
    np.testing.assert_array_equal(scored.scores[:, 0], [4, 8, 9])          # every 4 cycles and the last
    assert np.all(scored.scores[:, 3] == 6)
    for cyc, corr, margin, _ in scored.scores:
        assert (corr, margin) == quick_score(seen[int(cyc)], _digits(), scored.config, int(cyc))
        assert 0 <= margin <= corr <= 1


def test_default_interval_and_validation():
    # default: at least 50 cycles apart (scoring stays a few per cent of training time), 10 per long run
    assert TrainConfig(cycles=100).score_interval == 50 and TrainConfig(cycles=7).score_interval == 50
    assert TrainConfig(cycles=3000).score_interval == 300
    assert TrainConfig(cycles=100, score_every=0).score_interval == 0
    with pytest.raises(InputError, match="score_every = -1"):
        TrainConfig(score_every=-1)
    with pytest.raises(InputError, match="score_runs = 1"):
        TrainConfig(score_runs=1)


def test_scores_survive_an_interrupted_and_resumed_run(tmp_path):
    ck = tmp_path / "ck.npz"
    straight = train(new_state(_digits(), _cfg(8, score_every=2, score_runs=4), n_hidden=3), progress=False)

    def interrupt(s):
        if s.cycle == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(new_state(_digits(), _cfg(8, score_every=2, score_runs=4), n_hidden=3), checkpoint=ck,
              progress=False, on_cycle=interrupt)
    saved = TrainState.load(ck)
    assert saved.cycle == 5 and list(saved.scores[:, 0]) == [2, 4]
    resumed = train(saved, checkpoint=ck, progress=False)
    np.testing.assert_array_equal(resumed.scores, straight.scores)
    np.testing.assert_array_equal(TrainState.load(ck).scores, straight.scores)


def test_train_json_and_loss_plot_carry_the_scores(tmp_path):
    from thermohw import workflow

    sm = workflow.run_training(tmp_path / "run", digits=(0, 1), n_hidden=4, progress=False,
                               config=TrainConfig(cycles=6, t_f=0.05, score_every=3, score_runs=4))
    rows = json.loads((tmp_path / "run" / "train.json").read_text())["generation_scores"]["rows"]
    assert [r[0] for r in rows] == [3, 6] and rows == sm["generation_scores"]["rows"]
    assert sm["final_excess_loss_last_10pct"] == pytest.approx(sm["final_loss_mean_last_10pct"] - 0.5)
    assert (tmp_path / "run" / "plots" / "loss.png").is_file()
