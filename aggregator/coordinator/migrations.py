"""The store's schema: ordered migrations, never edited once released; `schema_version` records what was applied."""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: initial schema
    """
    CREATE TABLE organisations (
        id            VARCHAR PRIMARY KEY,
        kind          VARCHAR NOT NULL,          -- investigative | non_investigative
        reporter_type VARCHAR NOT NULL,
        cap           VARCHAR NOT NULL,          -- exact epsilon cap per period, e.g. '1' or '1/2'
        status        VARCHAR NOT NULL,          -- active | revoked
        registered_at TIMESTAMP NOT NULL,        -- UTC
        revoked_at    TIMESTAMP
    );
    CREATE TABLE org_keys (
        keyid      VARCHAR PRIMARY KEY,          -- bundle.key_id(raw public key)
        org_id     VARCHAR NOT NULL,
        public_key VARCHAR NOT NULL,             -- base64 of the raw 32-byte Ed25519 key
        valid_from TIMESTAMP NOT NULL,
        retired_at TIMESTAMP,                    -- replaced by a rotation: bundles created before still merge
        revoked_at TIMESTAMP                     -- revoked: nothing signed with it merges any more
    );
    CREATE TABLE bundles (
        digest        VARCHAR PRIMARY KEY,       -- sha256 of the envelope file = its archive name
        org_id        VARCHAR NOT NULL,
        period        INTEGER NOT NULL,
        sequence      INTEGER NOT NULL,
        keyid         VARCHAR NOT NULL,
        created_at    TIMESTAMP NOT NULL,
        expires_at    TIMESTAMP NOT NULL,
        received_at   TIMESTAMP NOT NULL,
        ledger_index  BIGINT NOT NULL,           -- the ledger entry that accepted it
        epsilon       VARCHAR NOT NULL,          -- exact; '0' when the bundle has no release
        n_records     INTEGER NOT NULL,
        n_withdrawals INTEGER NOT NULL,
        superseded_by VARCHAR,                   -- digest of the higher sequence that replaced it in the table
        flagged       VARCHAR,                   -- a note for auditors on an accepted bundle
        UNIQUE (org_id, period, sequence)
    );
    CREATE TABLE records (
        digest            VARCHAR NOT NULL,
        org_id            VARCHAR NOT NULL,
        period            INTEGER NOT NULL,
        pseudonym         VARCHAR NOT NULL,
        basis             VARCHAR NOT NULL,
        form              VARCHAR NOT NULL,
        age_band          VARCHAR NOT NULL,
        gender            VARCHAR NOT NULL,
        nationality_group VARCHAR NOT NULL,
        province          VARCHAR NOT NULL,
        PRIMARY KEY (digest, pseudonym)
    );
    CREATE TABLE marginals (
        digest            VARCHAR NOT NULL,
        marginal_index    INTEGER NOT NULL,
        dimensions        VARCHAR[] NOT NULL,
        epsilon           VARCHAR NOT NULL,
        scale             DOUBLE NOT NULL,
        variance          DOUBLE NOT NULL,       -- discrete Laplace variance of one cell
        expected_error_95 DOUBLE NOT NULL,
        PRIMARY KEY (digest, marginal_index)
    );
    CREATE TABLE noisy_cells (
        digest            VARCHAR NOT NULL,
        marginal_index    INTEGER NOT NULL,
        form              VARCHAR,               -- NULL: not a dimension of this marginal
        age_band          VARCHAR,
        gender            VARCHAR,
        nationality_group VARCHAR,
        province          VARCHAR,
        count             BIGINT NOT NULL
    );
    CREATE TABLE withdrawals (
        digest    VARCHAR NOT NULL,
        org_id    VARCHAR NOT NULL,
        period    INTEGER NOT NULL,
        pseudonym VARCHAR NOT NULL,
        PRIMARY KEY (digest, period, pseudonym)
    );
    CREATE TABLE ledger (
        idx       BIGINT PRIMARY KEY,            -- 1, 2, 3, ...
        event     VARCHAR NOT NULL,              -- register | rotate | revoke | accept
        org_id    VARCHAR NOT NULL,
        period    INTEGER,
        digest    VARCHAR,
        epsilon   VARCHAR,
        entry     VARCHAR NOT NULL,              -- canonical JSON of the entry, including prev_hash
        prev_hash VARCHAR NOT NULL,
        hash      VARCHAR NOT NULL               -- sha256 of `entry`
    );
    """,
    # 2: joint releases (computation plans, the bundles that contribute shares, co-signed results)
    """
    ALTER TABLE bundles ADD COLUMN joint_plan VARCHAR;      -- digest of the plan whose shares the bundle carries
    ALTER TABLE bundles ADD COLUMN joint_epsilon VARCHAR;   -- exact; the plan's epsilon, part of `epsilon`
    CREATE TABLE plans (
        digest        VARCHAR PRIMARY KEY,     -- sha256 of the canonical plan document
        period        INTEGER NOT NULL,
        epsilon       VARCHAR NOT NULL,
        deadline      TIMESTAMP NOT NULL,
        document      VARCHAR NOT NULL,        -- canonical JSON
        registered_at TIMESTAMP NOT NULL,
        ledger_index  BIGINT NOT NULL
    );
    CREATE TABLE joint_results (
        plan          VARCHAR PRIMARY KEY,     -- one computation per plan: each organisation's joint epsilon once
        period        INTEGER NOT NULL,
        result        VARCHAR NOT NULL,        -- canonical JSON of the opened (noisy) counts
        signatures    VARCHAR NOT NULL,        -- JSON list: one Ed25519 signature per party of the plan
        bundles       VARCHAR NOT NULL,        -- JSON list of the bundle digests whose shares were used
        computed_at   TIMESTAMP NOT NULL,
        ledger_index  BIGINT NOT NULL
    );
    """,
    # 3: a withdrawal names the sequence of the organisation's bundle it withdraws from (that one and earlier ones
    # of the period), so it applies whatever the bundles' clocks; NULL for bundles made before it did.
    """
    ALTER TABLE withdrawals ADD COLUMN sequence INTEGER;
    """,
]
SCHEMA_VERSION_SQL = """
CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER PRIMARY KEY,
    applied_at TIMESTAMP NOT NULL
)
"""
