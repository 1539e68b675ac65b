"""The `qlearning4k` command: configs, presets, RL Zoo files, run folders, safe loading.

Commands run in this process through `qlearning4k.cli.main` (the console
script's function), on real games, at tiny budgets.
"""

import functools
import json
import os
import pickle
import shutil
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from qlearning4k import Agent, RunFolder, from_sb3
from qlearning4k._internals import check_config, override, read_preset, read_zoo, zoo_literal
from qlearning4k.cli import main
from qlearning4k.games import Catch, GymGame

ROOT = Path(__file__).parent.parent
ZOO = Path(__file__).parent / "data" / "rl_zoo3"
ZOO_TASKS = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0", "LunarLander-v3")
PRESETS = ("acrobot", "atari-breakout", "cartpole", "catch", "lunarlander", "minatar-breakout",
           "mountaincar", "snake")  # fmt: skip
TINY_CATCH = ["--preset", "catch", "--set", "train.nb_epoch=12", "--set",
              "evaluate.nb_games=5", "--verbose", "0"]  # fmt: skip


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def catch_run(tmp_path_factory):
    """A finished run of the Catch preset (12 games, a checkpoint every 4)."""
    folder = tmp_path_factory.mktemp("runs") / "catch"
    keras.utils.set_random_seed(0)
    assert main(["train", *TINY_CATCH, "--checkpoint", "4", "--run", str(folder)]) == 0
    return folder


# -- configs, presets and the RL Zoo's files ------------------------------------------


@pytest.mark.backend_free
@pytest.mark.parametrize("task", ZOO_TASKS)
def test_the_zoo_dqn_entries_load_unchanged(task):
    config = check_config(read_zoo(ZOO / "dqn.yml", task))
    assert config.algo == "dqn" and config.game == task
    assert config.sb3["policy_kwargs"] == {"net_arch": [256, 256]}
    assert isinstance(config.sb3["n_timesteps"], float)  # `!!float 5e4`
    agent, train_kwargs = from_sb3(config.sb3, GymGame(task), seed=0)
    assert [layer.units for layer in agent.model.layers if hasattr(layer, "units")][:2] == [
        256,
        256,
    ]
    assert train_kwargs["total_timesteps"] == int(config.sb3["n_timesteps"])


@pytest.mark.backend_free
def test_the_zoo_qrdqn_file_gives_quantiles():
    config = check_config(read_zoo(ZOO / "qrdqn.yml", "Acrobot-v1"))
    assert config.algo == "qrdqn"
    assert config.sb3["policy_kwargs"] == {"net_arch": [256, 256], "n_quantiles": 25}


@pytest.mark.backend_free
@pytest.mark.parametrize(
    "text, expected",
    [
        ("dict(net_arch=[256, 256])", {"net_arch": [256, 256]}),
        ("dict(net_arch=dict(pi=[64], qf=[64]), n_quantiles=25)",
         {"net_arch": {"pi": [64], "qf": [64]}, "n_quantiles": 25}),
        ("{'net_arch': [64], 'normalize_images': False}",
         {"net_arch": [64], "normalize_images": False}),
    ],
)  # fmt: skip
def test_zoo_policy_kwargs_are_read_as_literals(text, expected):
    assert zoo_literal(text) == expected


@pytest.mark.backend_free
@pytest.mark.parametrize(
    "text, named",
    [
        ("dict(activation_fn=nn.ReLU)", "nn.ReLU"),
        ("__import__('os').system('touch pwned')", "__import__"),
        ("dict(net_arch=eval('[1]'))", "eval"),
        ("dict(**{'a': 1})", "dict(**{'a': 1})"),
    ],
)
def test_zoo_policy_kwargs_run_no_code(tmp_path, monkeypatch, text, named):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="without running code") as error:
        zoo_literal(text)
    assert named in str(error.value)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.backend_free
@pytest.mark.parametrize("name", PRESETS)
def test_each_preset_is_a_valid_config_with_its_figure(name):
    raw, text = read_preset(name)
    check_config(raw)
    comments = [line for line in text.splitlines() if line.startswith("#")]
    assert any(line.startswith("# Reaches: ") for line in comments), name
    assert any(line.startswith("# Measured by: ") for line in comments), name
    assert "FIGURE" not in text


@pytest.mark.backend_free
def test_numbers_in_yaml_1_2_style_and_overrides():
    raw = override(read_preset("acrobot")[0], ["sb3.learning_rate=1e-3", "seed=3",
                                               "train.nb_parallel=2"])  # fmt: skip
    config = check_config(raw)
    assert config.sb3["learning_rate"] == 1e-3 and config.seed == 3
    assert config.train == {"nb_parallel": 2}


@pytest.mark.backend_free
def test_presets_command_lists_every_preset_with_its_figure(capsys):
    status, out, _ = run_cli(capsys, "presets")
    assert status == 0
    for name in PRESETS:
        assert f"\n{name}: " in f"\n{out}"
    assert out.count("Reaches: ") == len(PRESETS)


# -- bad input: clear errors before any training ------------------------------------------


@pytest.mark.backend_free
@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--set", "gamee=1"], "Unknown key gamee (did you mean 'game'?)"),
        (["--set", "train.batch_sise=3"],
         "Unknown key train.batch_sise (did you mean 'batch_size'?)"),
        (["--set", "agent.memory_sise=3"], "did you mean 'memory_size'?"),
        (["--set", "network.optimiser=Adam"], "did you mean 'optimizer'?"),
        (["--set", "network.layers=[Dense]"], "network.layers[0]: Dense({}) failed"),
        (["--set", "network.layers=[[Dense]]"], "network.layers[0] must be"),
        (["--set", "network.layers=[Flaten]"], "did you mean 'Flatten'?"),
        (["--set", "network.layers=[Lambda]"], "names a class of keras.layers"),
        (["--set", "seed=-1"], "seed must be an int >= 0"),
        (["--set", "agent.distribution={C5l: {}}"], "did you mean 'C51'?"),
        (["--set", "wrappers=[[AtariPreprocessing]]"], "wrappers[0] must be a class name"),
    ],
)  # fmt: skip
def test_bad_configs_fail_before_training(tmp_path, capsys, arguments, message):
    folder = tmp_path / "run"
    status, _, err = run_cli(capsys, "train", *TINY_CATCH, *arguments, "--run", folder)
    assert status == 2
    assert message in err
    assert not folder.exists()


@pytest.mark.backend_free
def test_an_unknown_zoo_setting_names_the_nearest(tmp_path, capsys):
    status, _, err = run_cli(capsys, "train", "--zoo", ZOO / "dqn.yml", "--env", "Acrobot-v1",
                             "--set", "sb3.learning_rat=1e-3", "--run", tmp_path / "r")  # fmt: skip
    assert status == 2 and "did you mean 'learning_rate'?" in err
    status, _, err = run_cli(capsys, "train", "--zoo", ZOO / "dqn.yml", "--env", "Pong-v5")
    assert status == 2 and "no entry for Pong-v5" in err and "Acrobot-v1" in err


@pytest.mark.backend_free
@pytest.mark.parametrize(
    "preset, module, extra",
    [("minatar-breakout", "minatar.gym", "minatar"), ("atari-breakout", "ale_py", "atari"),
     ("lunarlander", "Box2D", "box2d")],
)  # fmt: skip
def test_a_preset_whose_extra_is_missing_names_it(tmp_path, capsys, monkeypatch, preset, module,
                                                 extra):  # fmt: skip
    monkeypatch.setitem(sys.modules, module, None)  # as if it were not installed
    status, _, err = run_cli(capsys, "train", "--preset", preset, "--run", tmp_path / "r")
    assert status == 2
    assert f'pip install "qlearning4k[{extra}]"' in err
    assert not (tmp_path / "r").exists()


@pytest.mark.backend_free
def test_a_backend_that_is_not_installed_names_its_extra(catch_run, capsys, monkeypatch):
    monkeypatch.setattr("qlearning4k.cli.importlib.util.find_spec", lambda name: None)
    status, _, err = run_cli(capsys, "evaluate", catch_run, "--backend", "jax")
    assert status == 2 and 'needs jax, which is not installed (the "jax" extra)' in err


@pytest.mark.backend_free
def test_not_a_run_folder_and_a_taken_one(tmp_path, capsys):
    for command in ("evaluate", "play", "export"):
        status, _, err = run_cli(capsys, command, tmp_path)
        assert status == 2 and "Expected a run folder" in err
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    status, _, err = run_cli(capsys, "train", *TINY_CATCH, "--run", tmp_path / "taken")
    assert status == 2 and "is not empty" in err and "--resume" in err


@pytest.mark.backend_free
def test_an_export_format_the_backend_lacks_names_those_it_has(catch_run, capsys):
    status, _, err = run_cli(capsys, "export", catch_run, "--format", "torchscript")
    assert status == 2
    assert "tensorflow backend exports onnx, tf_saved_model, litert" in err
    # --backend runs the command again in a process on that backend, whose
    # export fails the same way (or, without PyTorch installed, names its extra).
    status = main(["export", str(catch_run), "--format", "litert", "--backend", "torch"])
    assert status == 2


# -- a run, from training to export ------------------------------------------------------


def test_train_writes_a_run_folder_a_person_can_read(catch_run):
    files = ("config.yml", "history.csv", "learning_curve.png", "README.md",
             "evaluations/final.json", "agent/model.keras", "checkpoints/last/run.pkl")  # fmt: skip
    for name in files:
        assert (catch_run / name).is_file(), name
    assert len((catch_run / "history.csv").read_text().splitlines()) == 1 + 12
    final = json.loads((catch_run / "evaluations" / "final.json").read_text())
    assert final["nb_games"] == 5 and len(final["scores"]) == 5
    card = (catch_run / "README.md").read_text()
    assert "| final | 5 |" in card and "nb_epoch: 12" in card and "Agent.load(" in card


def test_evaluate_play_and_export_a_run(catch_run, tmp_path, capsys):
    status, out, _ = run_cli(capsys, "evaluate", catch_run, "--games", "7", "--name", "again")
    assert status == 0 and "over 7 games" in out
    assert json.loads((catch_run / "evaluations" / "again.json").read_text())["nb_games"] == 7
    assert "| again | 7 |" in (catch_run / "README.md").read_text()
    status, out, _ = run_cli(capsys, "play", catch_run, "--games", "2", "--video",
                             tmp_path / "catch.gif")  # fmt: skip
    assert status == 0 and (tmp_path / "catch.gif").stat().st_size > 0
    status, out, _ = run_cli(capsys, "export", catch_run, "--output", tmp_path / "p.onnx")
    assert status == 0 and (tmp_path / "p.onnx").stat().st_size > 0


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="bit for bit on TF's CPU")
def test_resume_continues_an_interrupted_run_to_the_same_end(catch_run, tmp_path, capsys):
    run = tmp_path / "catch"
    shutil.copytree(catch_run, run)
    # As if the run had died after game 8: its newest checkpoint and agent gone.
    shutil.rmtree(run / "checkpoints" / "last")
    shutil.rmtree(run / "agent")
    status, _, err = run_cli(capsys, "train", "--resume", run, "--verbose", "0")
    assert status == 0, err
    resumed = Agent.load(run / "agent").model.get_weights()
    whole = Agent.load(catch_run / "agent").model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(resumed, whole, strict=True))


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the target is on TF")
def test_the_acrobot_preset_trains_what_its_script_trains(tmp_path, capsys):
    budget = ["--set", "sb3.n_timesteps=600", "--set", "evaluate.nb_games=2"]
    status, _, err = run_cli(capsys, "train", "--preset", "acrobot", "--run", tmp_path / "r",
                             "--verbose", "0", *budget)  # fmt: skip
    assert status == 0, err
    # The same run as a script (docs/command-line.md).
    zoo = dict(read_preset("acrobot")[0]["sb3"], n_timesteps=600)
    keras.utils.set_random_seed(0)
    game = GymGame("Acrobot-v1", seed=0)
    agent, train_kwargs = from_sb3(zoo, game, seed=0)
    agent.train(game, verbose=0, **train_kwargs)
    trained = Agent.load(tmp_path / "r" / "agent").model.get_weights()
    mine = agent.model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(trained, mine, strict=True))


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="bit for bit on TF's CPU")
def test_the_minatar_preset_trains_what_its_example_trains(tmp_path, capsys, monkeypatch):
    pytest.importorskip("minatar")
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    import minatar_breakout as example

    trained = []
    train = Agent.train

    @functools.wraps(train)
    def keep(self, *args, **kwargs):
        history = train(self, *args, **kwargs)
        trained.append(self.model.get_weights())
        return history

    monkeypatch.setattr(Agent, "train", keep)
    example.main(smoke=True, seed=0)  # the preset's figure is this example's
    steps = example.SMOKE_TIMESTEPS
    status, _, err = run_cli(capsys, "train", "--preset", "minatar-breakout", "--run",
                             tmp_path / "r", "--verbose", "0", "--set", "evaluate.nb_games=1",
                             "--set", f"train.total_timesteps={steps}",
                             "--set", f"train.learning_starts={steps // 3}")  # fmt: skip
    assert status == 0, err
    assert len(trained) == 2
    assert all(np.array_equal(a, b) for a, b in zip(*trained, strict=True))


def test_a_network_config_with_c51_dueling_and_prioritized_replay(tmp_path, capsys):
    c51 = "agent.distribution={C51: {v_min: -1, v_max: 1, nb_atoms: 11}}"
    status, _, err = run_cli(capsys, "train", *TINY_CATCH, "--run", tmp_path / "r", "--set", c51,
                             "--set", "agent.prioritized={}",
                             "--set", "network.head=dueling")  # fmt: skip
    assert status == 0, err
    agent = RunFolder.open(tmp_path / "r").load_agent()
    assert agent.distribution.nb_atoms == 11 and agent.model.output_shape == (None, 3 * 11)
    assert type(agent.memory).__name__ == "PrioritizedExperienceReplay"


def test_run_folder_as_a_callback_of_agent_train(tmp_path, model_factory):
    run = RunFolder(tmp_path / "run")
    agent = Agent(model_factory(), seed=0)
    agent.train(Catch(seed=0), nb_epoch=6, verbose=0, callbacks=[run])
    run.record_evaluation(agent.evaluate(Catch(), nb_games=4, seed=0), "mine")
    loaded = RunFolder.open(tmp_path / "run").load_agent()
    state = np.zeros((2, 1, 10, 10), "float32")
    np.testing.assert_array_equal(loaded.q_values(state), agent.q_values(state))
    assert "| mine | 4 |" in (tmp_path / "run" / "README.md").read_text()
    assert not (tmp_path / "run" / "config.yml").exists()


@pytest.mark.backend_free
def test_the_readme_trains_watches_and_exports_acrobot_in_three_commands(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## From the command line", 1)[1].split("```bash", 1)[1].split("```")[0]
    commands = [line.split() for line in block.splitlines() if line.startswith("qlearning4k ")]
    assert [words[1] for words in commands] == ["train", "play", "export"]
    monkeypatch.chdir(tmp_path)
    tiny = ["--set", "sb3.n_timesteps=300", "--set", "evaluate.nb_games=2", "--verbose", "0"]
    for words in commands:
        assert main(words[1:] + (tiny if words[1] == "train" else [])) == 0, words
    assert (tmp_path / "acrobot.mp4").stat().st_size > 0
    assert (tmp_path / "runs" / "acrobot" / "policy.onnx").stat().st_size > 0


# -- loading a run folder from elsewhere runs none of its code ----------------------------------


class _Planted:
    """Unpickling it would write the file `marker`."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "ran"))


def _plant_pickle(run: Path, marker: Path) -> None:
    for where in (run / "agent" / "run.pkl", run / "checkpoints" / "last" / "run.pkl"):
        where.write_bytes(pickle.dumps(_Planted(marker)))


def _plant_npz(run: Path, marker: Path) -> None:
    np.savez(run / "agent" / "memory.npz", states=np.array([_Planted(marker)], dtype=object))


def _plant_lambda(run: Path, marker: Path) -> None:
    path = str(marker)
    model = keras.Sequential([
        keras.Input((1, 10, 10)), keras.layers.Flatten(),
        keras.layers.Lambda(lambda x: (open(path, "w").write("ran"), x)[1]),  # noqa: SIM115
        keras.layers.Dense(3),
    ])  # fmt: skip
    model.compile("adam", "mse")
    (run / "agent" / "model.keras").unlink()
    model.save(run / "agent" / "model.keras")
    (run / "agent" / "checksums.json").unlink()  # as a forger would
    marker.unlink()  # building the model called its function; loading it must not


@pytest.mark.backend_free
@pytest.mark.parametrize(
    "plant, refused",
    [(_plant_pickle, None), (_plant_npz, "pickle"), (_plant_lambda, "safe")],
)
@pytest.mark.parametrize("command", ["evaluate", "play", "export"])
def test_loading_a_run_folder_runs_no_code_from_it(catch_run, tmp_path, capsys, plant, refused,
                                                  command):  # fmt: skip
    run, marker = tmp_path / "run", tmp_path / "marker.txt"
    shutil.copytree(catch_run, run)
    plant(run, marker)
    arguments = {"export": ["--output", tmp_path / "p.onnx"]}.get(command, ["--games", "1"])
    status, _, err = run_cli(capsys, command, run, *arguments)
    assert not marker.exists()
    if refused is None:
        assert status == 0, err
    else:
        assert status == 2 and refused in err.lower(), err


# -- sweeps on Ray Tune -------------------------------------------------------------------------


@pytest.mark.backend_free
@pytest.mark.xdist_group("ray")
def test_sweep_runs_a_grid_on_ray_tune(tmp_path, capsys, ray_cluster):
    config = tmp_path / "sweep.yml"
    raw = dict(read_preset("catch")[0], train={"nb_epoch": 8, "batch_size": 16})
    raw["sweep"] = {"parameters": {"network.optimizer.SGD.learning_rate": [0.1, 0.2]},
                    "every_games": 4, "nb_eval_games": 2}  # fmt: skip
    import yaml

    config.write_text(yaml.safe_dump(raw))
    status, out, err = run_cli(capsys, "sweep", config, "--storage", tmp_path / "ray")
    assert status == 0, err
    assert out.count("eval_score") >= 3 and "Best: network.optimizer.SGD.learning_rate=" in out
    raw["sweep"]["parameters"] = {"train.batch_sise": [16]}
    config.write_text(yaml.safe_dump(raw))
    status, _, err = run_cli(capsys, "sweep", config)
    assert status == 2 and "did you mean 'batch_size'?" in err
    assert not os.path.exists("runs/sweeps")
