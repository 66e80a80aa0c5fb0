"""ComBat (Johnson et al. 2007; Fortin et al. 2017) on image-derived features, fitted on training rows only.

The harmonization baseline on features: per feature, a linear model of the site (batch) and the
biological covariates, then site-specific location and scale shrunk by empirical Bayes across features.
neuroCombat fits and adjusts the same rows; its ``neuroCombatFromTraining`` ("under development") drops
the covariates of new rows. So this module implements the same estimator with a fit / apply split: the
estimates come from the training rows, and new (test) rows are adjusted with their own covariates. A test
checks that fitting and applying on the same rows reproduces neuroCombat.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

__all__ = ["ComBat"]


@dataclass
class ComBat:
    """Parametric empirical-Bayes ComBat with protected covariates.

    Args:
        continuous: covariates entered linearly (e.g. ``age``).
        categorical: covariates entered as indicators (e.g. ``sex``, ``diagnosis``).
    """

    continuous: Sequence[str] = ("age",)
    categorical: Sequence[str] = ()

    def _covariates(self, table: pd.DataFrame) -> np.ndarray:
        parts = [pd.to_numeric(table[c], errors="raise").to_numpy(float)[:, None] for c in self.continuous]
        for column in self.categorical:
            levels = self.levels_[column]
            unknown = sorted(set(table[column].astype(str)) - set(levels))
            if unknown:
                raise ValueError(f"ComBat: {column} value(s) {unknown} were not in the training rows ({levels})")
            parts += [(table[column].astype(str) == level).to_numpy(float)[:, None] for level in levels[1:]]
        return np.hstack(parts) if parts else np.zeros((len(table), 0))

    def fit(self, features: np.ndarray, sites: Sequence[str], table: pd.DataFrame) -> "ComBat":
        """Estimate on training rows: ``features`` (n, p), their ``sites`` and covariate ``table`` (n rows)."""
        y = np.asarray(features, float).T  # p x n, as in the ComBat papers
        sites = np.asarray(sites).astype(str)
        self.sites_ = sorted({str(s) for s in sites})
        if len(self.sites_) < 2:
            raise ValueError(f"ComBat needs at least two sites, got {self.sites_}")
        self.levels_ = {c: sorted(set(table[c].astype(str))) for c in self.categorical}
        covariates_train = self._covariates(table)
        self.covariate_mean_ = covariates_train.mean(axis=0)
        batch = np.stack([(sites == s).astype(float) for s in self.sites_], axis=1)
        covariates = covariates_train
        design = np.hstack([batch, covariates])
        beta = np.linalg.solve(design.T @ design, design.T @ y.T)  # (k, p)
        n_per_site = batch.sum(axis=0)
        self.grand_mean_ = (n_per_site / len(sites)) @ beta[: len(self.sites_)]
        self.covariate_beta_ = beta[len(self.sites_) :]
        self.var_pooled_ = ((y - (design @ beta).T) ** 2).mean(axis=1)
        standardized = (y - self._stand_mean(covariates)) / np.sqrt(self.var_pooled_)[:, None]
        self.gamma_, self.delta_ = [], []
        for j in range(len(self.sites_)):
            part = standardized[:, batch[:, j] > 0]
            gamma_hat, delta_hat = part.mean(axis=1), part.var(axis=1, ddof=1)
            gamma, delta = _empirical_bayes(part, gamma_hat, delta_hat)
            self.gamma_.append(gamma)
            self.delta_.append(delta)
        return self

    def _stand_mean(self, covariates: np.ndarray) -> np.ndarray:
        return self.grand_mean_[:, None] + (covariates @ self.covariate_beta_).T

    def transform(self, features: np.ndarray, sites: Sequence[str], table: pd.DataFrame) -> np.ndarray:
        """Harmonized features (n, p) for rows of known sites, each with its own covariates."""
        y = np.asarray(features, float).T
        sites = np.asarray(sites).astype(str)
        unknown = sorted({str(s) for s in sites} - set(self.sites_))
        if unknown:
            raise ValueError(f"ComBat: site(s) {unknown} were not in the training rows ({self.sites_})")
        stand_mean = self._stand_mean(self._covariates(table))
        scale = np.sqrt(self.var_pooled_)[:, None]
        standardized = (y - stand_mean) / scale
        index = np.array([self.sites_.index(s) for s in sites])
        gamma = np.stack(self.gamma_, axis=1)[:, index]
        delta = np.stack(self.delta_, axis=1)[:, index]
        return ((standardized - gamma) / np.sqrt(delta) * scale + stand_mean).T

    def transform_without_covariates(self, features: np.ndarray, sites: Sequence[str]) -> np.ndarray:
        """Harmonized features when the rows' covariates may not be used (e.g. the true age of subjects
        whose age is to be predicted): every row gets the training rows' mean covariates, so the
        adjustment is a per-site, per-feature affine map that carries no information about the row's age."""
        y = np.asarray(features, float).T
        sites = np.asarray(sites).astype(str)
        unknown = sorted({str(s) for s in sites} - set(self.sites_))
        if unknown:
            raise ValueError(f"ComBat: site(s) {unknown} were not in the training rows ({self.sites_})")
        covariates = np.repeat(self.covariate_mean_[None, :], len(sites), axis=0)
        stand_mean = self._stand_mean(covariates)
        scale = np.sqrt(self.var_pooled_)[:, None]
        index = np.array([self.sites_.index(s) for s in sites])
        gamma = np.stack(self.gamma_, axis=1)[:, index]
        delta = np.stack(self.delta_, axis=1)[:, index]
        return (((y - stand_mean) / scale - gamma) / np.sqrt(delta) * scale + stand_mean).T


def _empirical_bayes(
    data: np.ndarray,
    gamma_hat: np.ndarray,
    delta_hat: np.ndarray,
    tol: float = 1e-4,
) -> tuple[np.ndarray, np.ndarray]:
    """Parametric EB shrinkage of one site's location / scale across features (neuroCombat's ``it_sol``)."""
    gamma_bar, tau2 = gamma_hat.mean(), gamma_hat.var(ddof=1)
    m, s2 = delta_hat.mean(), delta_hat.var(ddof=1)
    a, b = (2 * s2 + m**2) / s2, (m * s2 + m**3) / s2
    n = data.shape[1]
    gamma_old, delta_old = gamma_hat.copy(), delta_hat.copy()
    for _ in range(1000):
        gamma_new = (n * tau2 * gamma_hat + delta_old * gamma_bar) / (n * tau2 + delta_old)
        sum2 = ((data - gamma_new[:, None]) ** 2).sum(axis=1)
        delta_new = (0.5 * sum2 + b) / (n / 2.0 + a - 1.0)
        change = max(
            np.max(np.abs(gamma_new - gamma_old) / np.abs(gamma_old)), np.max(np.abs(delta_new - delta_old) / delta_old)
        )
        gamma_old, delta_old = gamma_new, delta_new
        if change <= tol:
            break
    return gamma_old, delta_old
