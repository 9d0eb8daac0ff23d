"""Class-balanced and random sampling, and label noise."""

import json

import numpy as np
import pytest
import scipy.stats

from pfml_jax.data import (SAMPLERS, ClassBalancedSampler, RandomSampler, apply_label_noise,
                           make_sampler)

# 23 classes of 1..12 images: some smaller than K, so they are drawn with replacement.
LABELS = np.repeat(np.arange(23), 1 + np.arange(23) % 12)


def test_batches_hold_p_classes_of_k_images():
  sampler = ClassBalancedSampler(LABELS, classes_per_batch=5, batch_size=20, seed=1)
  for step in range(40):
    batch = sampler.batch(step)
    assert batch.shape == (20,)
    classes = LABELS[batch].reshape(5, 4)
    assert (classes == classes[:, :1]).all() and len(np.unique(classes[:, 0])) == 5
    for row in batch.reshape(5, 4):  # without replacement whenever the class has >= K images
      if np.sum(LABELS == LABELS[row[0]]) >= 4:
        assert len(np.unique(row)) == 4
  small = np.flatnonzero(LABELS == 0)  # a one-image class appears as K copies of it
  batches = np.concatenate([sampler.batch(s) for s in range(40)])
  assert np.sum(batches == small[0]) % 4 == 0 and np.sum(batches == small[0]) > 0


def test_every_class_is_visited_each_round():
  sampler = ClassBalancedSampler(LABELS, classes_per_batch=5, batch_size=20, seed=2)
  assert sampler.batches_per_round == 4  # 23 // 5: three classes sit each round out
  for round_index in range(3):
    steps = range(round_index * 4, round_index * 4 + 4)
    seen = np.concatenate([LABELS[sampler.batch(s)] for s in steps])
    assert len(np.unique(seen)) == 20


def test_batches_are_a_pure_function_of_seed_and_step():
  first = ClassBalancedSampler(LABELS, 5, 20, seed=7)
  run = [first.batch(s) for s in range(12)]
  state = json.loads(json.dumps(first.state(next_step=8)))  # as checkpointed
  restored = ClassBalancedSampler(LABELS, 5, 20, seed=7)
  resume = state["next_step"]
  assert resume == 8 and restored.state(resume) == state
  for step in range(resume, 12):
    np.testing.assert_array_equal(restored.batch(step), run[step])
  np.testing.assert_array_equal(restored.batch(3), run[3])  # any order
  other = ClassBalancedSampler(LABELS, 5, 20, seed=8)
  assert not np.array_equal(other.batch(0), run[0])
  assert other.state(8)["seed"] != state["seed"]  # a resume compares them (resume_check.py)


def test_epoch_definition_and_errors():
  sampler = ClassBalancedSampler(LABELS, 5, 20, seed=0)
  assert sampler.steps_per_epoch == int(np.ceil(len(LABELS) / 20))
  with pytest.raises(ValueError, match="multiple of classes_per_batch"):
    ClassBalancedSampler(LABELS, 6, 20, seed=0)
  with pytest.raises(ValueError, match="exceeds the 23 classes"):
    ClassBalancedSampler(LABELS, 24, 48, seed=0)


def test_label_noise_statistics():
  num_classes, n, rate = 50, 40_000, 0.2
  labels = np.arange(n) % num_classes
  noisy, record = apply_label_noise(labels, num_classes, rate, seed=3)
  changed = noisy != labels
  np.testing.assert_array_equal(np.flatnonzero(changed), record.indices)
  np.testing.assert_array_equal(labels[record.indices], record.original)
  np.testing.assert_array_equal(noisy[record.indices], record.noisy)
  # The rate: changed ~ Binomial(n, rate), within 5 standard deviations.
  assert abs(changed.sum() - n * rate) < 5 * np.sqrt(n * rate * (1 - rate))
  assert abs(record.realized_rate - rate) < 0.01
  # Never the same class; the new class uniform over the other 49 (chi-square test).
  offsets = (record.noisy - record.original) % num_classes
  assert offsets.min() >= 1
  counts = np.bincount(offsets, minlength=num_classes)[1:]
  assert scipy.stats.chisquare(counts).pvalue > 1e-4
  again, _ = apply_label_noise(labels, num_classes, rate, seed=3)
  np.testing.assert_array_equal(again, noisy)
  assert not np.array_equal(apply_label_noise(labels, num_classes, rate, seed=4)[0], noisy)
  assert np.array_equal(apply_label_noise(labels, num_classes, 0.0, seed=3)[0], labels)


def test_label_noise_touches_only_the_given_split(tmp_path):
  from pfml_jax.data import read_split
  train = read_split("demo", split="train")
  test = read_split("demo", split="test")
  test_labels = test.labels.copy()
  noisy, record = apply_label_noise(train.labels, train.num_classes, 0.5, seed=0)
  noisy_train = train.with_noisy_labels(noisy, record)
  assert noisy_train.label_noise is record and train.label_noise is None
  assert np.mean(noisy_train.labels != train.labels) > 0.4
  np.testing.assert_array_equal(test.labels, test_labels)
  saved = json.loads(json.dumps(record.to_json()))
  assert saved["indices"] == record.indices.tolist() and saved["rate"] == 0.5
  assert saved["noisy"] == record.noisy.tolist()


# The random sampler: N = 144 images (LABELS), batches of 20, so permutation boundaries fall
# inside batches (144 is not a multiple of 20).
def test_random_batches_shape_dtype_and_epoch():
  sampler = RandomSampler(LABELS, batch_size=20, seed=1)
  assert sampler.num_images == 144 and sampler.batch_size == 20
  assert sampler.steps_per_epoch == 8  # ceil(144 / 20), as ClassBalancedSampler defines it
  assert sampler.steps_per_epoch == ClassBalancedSampler(LABELS, 5, 20, seed=1).steps_per_epoch
  for step in (0, 3, 4, 117):
    batch = sampler.batch(step)
    assert batch.shape == (20,) and batch.dtype == np.int64
    assert batch.min() >= 0 and batch.max() < 144


def test_random_batches_are_a_pure_function_of_seed_and_step():
  first = RandomSampler(LABELS, 20, seed=7)
  forward = [first.batch(s) for s in range(12)]
  backward = [first.batch(s) for s in reversed(range(12))][::-1]
  fresh = RandomSampler(LABELS, 20, seed=7)
  scattered = {s: fresh.batch(s) for s in (9, 2, 11, 0, 5, 1, 10, 3, 8, 4, 7, 6)}
  for s in range(12):
    np.testing.assert_array_equal(forward[s], backward[s])
    np.testing.assert_array_equal(forward[s], scattered[s])
  other = RandomSampler(LABELS, 20, seed=8)
  assert not np.array_equal(np.concatenate(forward), np.concatenate(
      [other.batch(s) for s in range(12)]))


def test_random_stream_visits_every_image_once_per_permutation():
  n, b = len(LABELS), 20
  sampler = RandomSampler(LABELS, b, seed=3)
  stream = np.concatenate([sampler.batch(s) for s in range(80)])  # 1600 positions, 11 N and a bit
  for e in range(len(stream) // n):
    window = stream[e * n:(e + 1) * n]
    np.testing.assert_array_equal(np.sort(window), np.arange(n))
    np.testing.assert_array_equal(window, sampler.permutation(e))
  # Consecutive permutations differ (a fresh shuffle each epoch).
  assert not np.array_equal(sampler.permutation(0), sampler.permutation(1))


def test_random_labels_are_unbalanced_class_balanced_are_not():
  labels = np.repeat(np.arange(10), 20)  # 10 classes x 20 images
  random_sampler = make_sampler("random", labels, batch_size=20, classes_per_batch=5, seed=0)
  balanced = make_sampler("class_balanced", labels, batch_size=20, classes_per_batch=5, seed=0)
  assert isinstance(random_sampler, RandomSampler)
  assert isinstance(balanced, ClassBalancedSampler)
  random_counts = [np.bincount(labels[random_sampler.batch(s)], minlength=10)
                   for s in range(50)]
  balanced_counts = [np.bincount(labels[balanced.batch(s)], minlength=10) for s in range(50)]
  assert all(set(c) <= {0, 4} for c in balanced_counts)
  # A shuffled batch of 20 from 10 classes is almost never exactly 5 classes x 4.
  assert sum(set(c) <= {0, 4} for c in random_counts) < 5
  assert np.mean([c.max() for c in random_counts]) < 6  # but not degenerate either


def test_sampler_registry_and_factory():
  assert set(SAMPLERS) == {"class_balanced", "random"}
  with pytest.raises(ValueError, match="sampler"):
    make_sampler("pk", LABELS, batch_size=20, classes_per_batch=5, seed=0)
  with pytest.raises(ValueError, match="batch_size"):
    RandomSampler(LABELS, batch_size=145, seed=0)
  sampler = RandomSampler(LABELS, 20, seed=5)
  assert sampler.state(12) == {"next_step": 12, "seed": 5, "sampler": "random",
                                "batch_size": 20}


def test_make_train_input_with_the_random_sampler():
  from pfml_jax.data import Crops, GrainMode, SamplerSpec, make_train_input, read_split
  split = read_split("demo", split="train")

  def train_input_of(sampler):
    return make_train_input(split, SamplerSpec(sampler, 16, 4, seed=1), Crops(24),
                            GrainMode(threads=2))

  train_input = train_input_of("random")
  assert isinstance(train_input.plan.sampler, RandomSampler)
  want = RandomSampler(split.labels, 16, seed=1)
  for step, batch in zip(range(2), train_input):
    assert batch["images"].shape == (16, 24, 24, 3) and batch["images"].dtype == np.uint8
    np.testing.assert_array_equal(batch["labels"], split.labels[want.batch(step)])
  assert isinstance(train_input_of("class_balanced").plan.sampler, ClassBalancedSampler)
  with pytest.raises(ValueError, match="sampler"):
    train_input_of("pk")


def test_config_names_a_registered_sampler():
  from pfml_jax.default_config import get_config
  from pfml_jax.settings.validation import validate
  config = get_config()
  assert config.data.sampler == "class_balanced"
  config.data.classes_per_batch = 8  # a batch of 32: splits over the test's 8 CPU devices
  for name in SAMPLERS:
    config.data.sampler = name
    validate(config)
  config.data.sampler = "pk"
  with pytest.raises(ValueError, match="config.data.sampler: 'pk' is not one of"):
    validate(config)
