"""init_proxies' kaiming_normal scheme against torch's own ``kaiming_normal_(mode='fan_out')``.

Proxy Anchor's reference code (tjddus9597/Proxy-Anchor-CVPR2020, losses.py) initialises its
(nb_classes, sz_embed) proxies with ``nn.init.kaiming_normal_(proxies, mode='fan_out')``; torch's
fan_out of a 2-D tensor is size(0), the row count, so entries are N(0, 2 / rows).
"""

import jax
import numpy as np
import pytest

from pfml_jax.losses.proxies import init_proxies


@pytest.mark.parametrize("num_classes,per_class,dim", [(100, 1, 512), (50, 2, 512)])
def test_kaiming_normal_matches_torch_fan_out(num_classes, per_class, dim):
  torch = pytest.importorskip("torch")
  ours = np.asarray(init_proxies(jax.random.key(0), num_classes, per_class, dim,
                                 "kaiming_normal"), np.float64)
  rows = num_classes * per_class
  assert ours.shape == (rows, dim)
  torch.manual_seed(0)
  theirs = torch.empty(rows, dim)
  torch.nn.init.kaiming_normal_(theirs, mode="fan_out")
  theirs = theirs.double().numpy()
  want = np.sqrt(2.0 / rows)  # 0.141 for 100 rows
  assert theirs.std() == pytest.approx(want, rel=0.03)
  assert ours.std() == pytest.approx(want, rel=0.03)
  assert ours.std() == pytest.approx(theirs.std(), rel=0.03)
  # Mean ~0: within 4 standard errors of the mean of rows x dim entries.
  assert abs(ours.mean()) < 4 * want / np.sqrt(ours.size)
  assert np.linalg.norm(ours, axis=1).mean() == pytest.approx(want * np.sqrt(dim), rel=0.03)


def test_unit_normal_rows_have_unit_norm():
  proxies = np.asarray(init_proxies(jax.random.key(0), 10, 3, 64, "unit_normal"))
  assert proxies.shape == (30, 64)
  np.testing.assert_allclose(np.linalg.norm(proxies, axis=1), 1.0, rtol=1e-5)


def test_unknown_scheme_refused():
  with pytest.raises(ValueError, match="scheme"):
    init_proxies(jax.random.key(0), 4, 1, 8, "xavier")
