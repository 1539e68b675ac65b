"""Sweep: seeds x learning rates x target updates on CartPole-v1, as Ray Tune trials.

Each trial is the RL Baselines3 Zoo's DQN for CartPole-v1 (through `from_sb3`)
with one learning rate and one target-update period, run by
`qlearning4k.tune.train_trial`: every EVAL_EVERY episodes it evaluates the
greedy policy on EVAL_EPISODES seeded episodes and reports `eval_score` to Tune
with a checkpoint of the whole run. ASHA stops the trials that fall behind;
a trial whose process dies resumes from its last checkpoint. At the end the
best trial's best checkpoint plays FINAL_EPISODES seeded episodes.

pip install "qlearning4k[ray,gym]"
python examples/sweep.py                       # the sweep, on this machine
python examples/sweep.py --address auto        # on a running cluster (ray start --head)
python examples/sweep.py --smoke               # 2 tiny trials, to check the set-up
"""

import argparse
import os

import keras
from ray import tune
from ray.tune.schedulers import ASHAScheduler

from qlearning4k import Agent, from_sb3
from qlearning4k.games import GymGame
from qlearning4k.tune import train_trial

# -- settings -----------------------------------------------------------------
ENV_ID = "CartPole-v1"
WIN = 475  # an episode is won when it scores 475 or more (500 is the maximum)
ZOO = {  # the RL Baselines3 Zoo's DQN entry for CartPole-v1
    "n_timesteps": 5e4, "policy": "MlpPolicy", "learning_rate": 2.3e-3,
    "batch_size": 64, "buffer_size": 100000, "learning_starts": 1000, "gamma": 0.99,
    "target_update_interval": 10, "train_freq": 256, "gradient_steps": 128,
    "exploration_fraction": 0.16, "exploration_final_eps": 0.04,
    "policy_kwargs": {"net_arch": [256, 256]},
}  # fmt: skip
SEEDS = [0, 1]
LEARNING_RATES = [2.3e-3, 2.3e-5]
TARGET_UPDATES = [10, 2_000]  # env steps between copies to the target network
EVAL_EVERY = 10  # training episodes between evaluations (and reports to Tune)
EVAL_EPISODES = 10
EVAL_SEED = 10_000  # evaluation episodes use seeds EVAL_SEED, EVAL_SEED + 1, ...
FINAL_EPISODES = 100
GRACE_STEPS = 10_000  # ASHA compares trials from this many env steps on
REDUCTION_FACTOR = 3  # at each of ASHA's rungs, the best third goes on
NUM_CPUS = 2  # of this machine, for a local cluster
MAX_FAILURES = 2  # restarts of a trial whose process died, from its checkpoint
SMOKE_STEPS = 1_500
# -----------------------------------------------------------------------------


def trainable(config: dict) -> None:
    """One trial: the Zoo's agent with the trial's learning rate and target updates."""
    hyperparams = {
        **ZOO,
        "learning_rate": config["learning_rate"],
        "target_update_interval": config["target_update_interval"],
        "n_timesteps": config["env_steps"],
    }
    agent, train_kwargs = from_sb3(hyperparams, GymGame(ENV_ID), seed=config["seed"])
    train_trial(
        agent,
        GymGame(ENV_ID, seed=config["seed"]),
        eval_game=GymGame(ENV_ID, win=WIN),
        every_games=EVAL_EVERY,
        nb_eval_games=EVAL_EPISODES,
        eval_seed=EVAL_SEED,
        eval_max_steps=None,  # CartPole-v1 stops an episode at 500 steps itself
        verbose=0,
        **train_kwargs,
    )


def main(smoke: bool = False, address: str | None = None, storage: str = "ray_results") -> dict:
    import ray

    env_steps = SMOKE_STEPS if smoke else int(ZOO["n_timesteps"])
    space = {
        "seed": tune.grid_search(SEEDS[:1] if smoke else SEEDS),
        "learning_rate": tune.grid_search(LEARNING_RATES),
        "target_update_interval": tune.grid_search(TARGET_UPDATES[:1] if smoke else TARGET_UPDATES),
        "env_steps": env_steps,
    }
    scheduler = ASHAScheduler(
        time_attr="env_steps",
        max_t=env_steps,
        grace_period=min(GRACE_STEPS, env_steps // 2),
        reduction_factor=REDUCTION_FACTOR,
    )
    ray.init(address=address, num_cpus=None if address else NUM_CPUS, log_to_driver=False)
    try:
        tuner = tune.Tuner(
            trainable,
            param_space=space,
            # reuse_actors: a new trial runs in a finished one's process, which has
            # imported Keras and its backend already.
            tune_config=tune.TuneConfig(
                metric="eval_score", mode="max", scheduler=scheduler, reuse_actors=True
            ),
            run_config=tune.RunConfig(
                name="cartpole-sweep",
                storage_path=os.path.abspath(storage),
                failure_config=tune.FailureConfig(max_failures=MAX_FAILURES),
                checkpoint_config=tune.CheckpointConfig(
                    num_to_keep=2, checkpoint_score_attribute="eval_score"
                ),
                verbose=1,
            ),
        )
        results = tuner.fit()
    finally:
        ray.shutdown()

    rows = []
    print(f"\n{'seed':>4} {'lr':>8} {'target':>6} {'env steps':>9} {'last':>6} {'best':>6}")
    for result in results:
        frame, config = result.metrics_dataframe, result.config
        stopped = result.metrics["env_steps"] < env_steps
        row = {**{k: config[k] for k in ("seed", "learning_rate", "target_update_interval")},
               "env_steps": int(result.metrics["env_steps"]),
               "last": result.metrics["eval_score"], "best": frame["eval_score"].max(),
               "stopped_early": stopped}  # fmt: skip
        rows.append(row)
        print(f"{row['seed']:>4} {row['learning_rate']:>8.1e} {row['target_update_interval']:>6} "
              f"{row['env_steps']:>9} {row['last']:>6.1f} {row['best']:>6.1f}  "
              f"{'stopped early' if stopped else ''}")  # fmt: skip
    best = results.get_best_result(scope="all")
    checkpoint = best.get_best_checkpoint("eval_score", "max")
    agent = Agent.load(os.path.join(checkpoint.path, "agent"))
    final = agent.evaluate(
        GymGame(ENV_ID, win=WIN), nb_games=FINAL_EPISODES, seed=EVAL_SEED + 1_000, max_steps=None
    )
    settings = {k: best.config[k] for k in ("seed", "learning_rate", "target_update_interval")}
    print(f"\nBest: {settings}: greedy return {final['mean_score']:.1f} "
          f"(+/- {final['std_score']:.1f}) over {FINAL_EPISODES} new episodes")  # fmt: skip
    print(f"Stopped early by ASHA: {sum(r['stopped_early'] for r in rows)} of {len(rows)} trials")
    keras.backend.clear_session()
    return {"trials": rows, "best": settings, "best_return": final["mean_score"]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny trials, to check the set-up")
    parser.add_argument("--address", help="a running Ray cluster's address (or 'auto')")
    parser.add_argument("--storage", default="ray_results", help="where Tune keeps results")
    args = parser.parse_args()
    main(args.smoke, args.address, args.storage)
