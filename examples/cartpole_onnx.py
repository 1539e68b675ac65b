"""CartPole from an ONNX file alone: train, export the policy, play it without qlearning4k.

Trains CartPole-v1 with the RL Baselines3 Zoo's DQN settings (through
from_sb3), writes the greedy policy with `agent.export("cartpole.onnx")`,
then plays EVAL_EPISODES seeded episodes with `agent.evaluate` and as many
with `play_onnx`, a loop that needs only Gymnasium, NumPy and `onnxruntime`
(what a program elsewhere would hold). At seed 0 the policy is solved and
scores 500 in both.

pip install "qlearning4k[gym,export]"
python examples/cartpole_onnx.py           # trains for the Zoo's 50,000 env steps
python examples/cartpole_onnx.py --smoke   # a few hundred env steps, to check the set-up
"""

import argparse

import gymnasium
import keras
import numpy as np

from qlearning4k import from_sb3
from qlearning4k.games import GymGame

# -- settings -----------------------------------------------------------------
ENV_ID = "CartPole-v1"
ZOO_SETTINGS = {  # rl-baselines3-zoo's hyperparams/dqn.yml, CartPole-v1
    "policy": "MlpPolicy",
    "n_timesteps": 50_000,
    "learning_rate": 2.3e-3,
    "batch_size": 64,
    "buffer_size": 100_000,
    "learning_starts": 1000,
    "gamma": 0.99,
    "target_update_interval": 10,
    "train_freq": 256,
    "gradient_steps": 128,
    "exploration_fraction": 0.16,
    "exploration_final_eps": 0.04,
    "policy_kwargs": {"net_arch": [256, 256]},
}
POLICY_FILE = "cartpole.onnx"
WIN = 475  # an episode is won when it scores 475 or more
EVAL_EPISODES = 20
EVAL_SEED = 10_000  # episode i starts from reset(seed=EVAL_SEED + i)
SEED = 0
SMOKE = {"n_timesteps": 600, "learning_starts": 100, "train_freq": 16, "gradient_steps": 4}
SMOKE_EPISODES = 2
# -----------------------------------------------------------------------------


def play_onnx(path: str, episodes: int, seed: int) -> list[float]:
    """Each episode's return, played greedily from the ONNX file: no qlearning4k here."""
    import onnxruntime

    session = onnxruntime.InferenceSession(path)
    env, returns = gymnasium.make(ENV_ID), []
    for i in range(episodes):
        observation, _ = env.reset(seed=seed + i)
        total, done = 0.0, False
        while not done:
            state = observation[None, None].astype(np.float32)  # (1, nb_frames=1, 4)
            action, _q_values = session.run(None, {"state": state})
            observation, reward, terminated, truncated, _ = env.step(int(action[0]))
            total, done = total + float(reward), terminated or truncated
        returns.append(total)
    env.close()
    return returns


def main(smoke: bool = False, seed: int = SEED) -> dict:
    keras.utils.set_random_seed(seed)
    settings = {**ZOO_SETTINGS, **SMOKE} if smoke else ZOO_SETTINGS
    agent, train_kwargs = from_sb3(settings, GymGame(ENV_ID), seed=seed)
    agent.train(GymGame(ENV_ID, seed=seed), verbose=0, **train_kwargs)
    agent.export(POLICY_FILE)

    episodes = SMOKE_EPISODES if smoke else EVAL_EPISODES
    # agent.evaluate's episode i resets with the seed GymGame(seed=EVAL_SEED + i) draws;
    # play_onnx resets with EVAL_SEED + i: other episodes, the same policy.
    evaluated = agent.evaluate(GymGame(ENV_ID), nb_games=episodes, seed=EVAL_SEED, max_steps=None)
    exported = play_onnx(POLICY_FILE, episodes, EVAL_SEED)
    print(f"agent.evaluate: mean return {evaluated['mean_score']:.1f}")
    print(f"{POLICY_FILE} in onnxruntime: mean return {np.mean(exported):.1f}")
    print(f"Win rate: {np.mean(np.asarray(exported) >= WIN):.2%} of the ONNX episodes")
    return {"evaluate": evaluated["mean_score"], "onnx": float(np.mean(exported))}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny run to check the set-up")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    main(args.smoke, args.seed)
