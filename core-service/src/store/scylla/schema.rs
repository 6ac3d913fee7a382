//! The CQL schema as numbered templates (`migrations/0001_*.cql`, compiled
//! in), how a template becomes statements, and the check a serving core makes:
//! every bundled migration applied, with the same checksum and table names.
//!
//! The checksum covers the template, not the rendered text, as DESIGN §1 says;
//! the names a migration was applied with are recorded beside it, so a core
//! configured with other names is refused rather than writing to tables that
//! do not exist.

use std::collections::BTreeMap;

use scylla::client::session::Session;
use scylla::statement::Statement;
use sha2::{Digest, Sha256};

use super::config::{ScyllaConfig, TableNames};
use super::error::is_missing_schema;

/// The table recording applied migrations (one deployment per keyspace).
pub const MIGRATIONS_TABLE: &str = "schema_migrations";
/// The table holding the LWT lock that serializes `migrate` runs.
pub const MIGRATIONS_LOCK_TABLE: &str = "schema_migrations_lock";

/// One numbered template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// Its number; applied in increasing order.
    pub version: i32,
    /// Its file name without number and extension.
    pub name: String,
    /// The template text, placeholders included.
    pub template: String,
}

/// The templates this binary was built with, in order.
pub fn bundled() -> Vec<Migration> {
    vec![
        Migration::new(
            1,
            "initial",
            include_str!("../../../../migrations/0001_initial.cql"),
        ),
        Migration::new(
            2,
            "chat_by_sender_ref",
            include_str!("../../../../migrations/0002_chat_by_sender_ref.cql"),
        ),
        Migration::new(
            3,
            "read_positions",
            include_str!("../../../../migrations/0003_read_positions.cql"),
        ),
        Migration::new(
            4,
            "connection_registry",
            include_str!("../../../../migrations/0004_connection_registry.cql"),
        ),
        Migration::new(
            5,
            "ownership",
            include_str!("../../../../migrations/0005_ownership.cql"),
        ),
    ]
}

/// Why the schema cannot be used or changed.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The database could not be asked.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database refused a statement.
    #[error("database error: {0}")]
    Database(String),
    /// The keyspace does not exist and `--create-keyspace` was not given.
    #[error(
        "keyspace {0} does not exist: create it, or run `meno-core migrate --create-keyspace`"
    )]
    KeyspaceMissing(String),
    /// Migrations this binary needs are not applied.
    #[error(
        "the schema in keyspace {keyspace} is older than this binary (missing {missing}): \
         run `meno-core migrate`"
    )]
    Outdated {
        /// The keyspace.
        keyspace: String,
        /// The missing migrations, as `0001_initial, ...`.
        missing: String,
    },
    /// An applied template differs from the bundled one.
    #[error(
        "migration {version:04}_{name} was applied with checksum {applied} but this binary's \
         template has {bundled}: applied templates must never change (add a new migration)"
    )]
    Changed {
        /// The migration.
        version: i32,
        /// Its name.
        name: String,
        /// The recorded checksum.
        applied: String,
        /// The bundled template's checksum.
        bundled: String,
    },
    /// A migration was applied with other keyspace or table names.
    #[error(
        "migration {version:04} was applied with names [{applied}] but this core is \
         configured with [{configured}]"
    )]
    NamesChanged {
        /// The migration.
        version: i32,
        /// Names recorded when it was applied.
        applied: String,
        /// Names configured now.
        configured: String,
    },
    /// A template is malformed.
    #[error("migration template {0}")]
    Template(String),
    /// Another `migrate` held the lock for too long.
    #[error(
        "another migrate holds the lock in keyspace {0}; it expires by itself within 5 minutes"
    )]
    LockTimeout(String),
}

impl Migration {
    /// A migration from its parts.
    pub fn new(version: i32, name: &str, template: &str) -> Self {
        Self {
            version,
            name: name.to_owned(),
            template: template.to_owned(),
        }
    }

    /// SHA-256 of the template, hex.
    pub fn checksum(&self) -> String {
        let digest = Sha256::digest(self.template.as_bytes());
        digest.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// `0001_initial`.
    pub fn label(&self) -> String {
        format!("{:04}_{}", self.version, self.name)
    }

    /// The template's statements with every placeholder filled in.
    pub fn render(&self, keyspace: &str, tables: &TableNames) -> Result<Vec<String>, SchemaError> {
        let mut text = self.template.replace("{{keyspace}}", keyspace);
        for (placeholder, name) in tables.placeholders() {
            text = text.replace(&format!("{{{{table.{placeholder}}}}}"), name);
        }
        let code: String = text
            .lines()
            .filter(|line| !line.trim_start().starts_with("--"))
            .map(|line| format!("{line}\n"))
            .collect();
        if let Some(at) = code.find("{{") {
            let unknown: String = code[at..].chars().take_while(|c| *c != '}').collect();
            return Err(SchemaError::Template(format!(
                "{}: unknown placeholder {unknown}}}}}",
                self.label()
            )));
        }
        Ok(code
            .split(';')
            .map(str::trim)
            .filter(|statement| !statement.is_empty())
            .map(str::to_owned)
            .collect())
    }
}

/// The names a migration is rendered with, as recorded in `schema_migrations`:
/// the keyspace and the tables its template names (comments included), so a
/// table added later does not change what an earlier migration recorded.
pub fn names_parameter(config: &ScyllaConfig, migration: &Migration) -> String {
    let mut parameter = format!("keyspace={}", config.keyspace);
    for (placeholder, name) in config.tables.placeholders() {
        if migration
            .template
            .contains(&format!("{{{{table.{placeholder}}}}}"))
        {
            parameter.push_str(&format!(",{placeholder}={name}"));
        }
    }
    parameter
}

/// A row of `schema_migrations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMigration {
    /// Its name.
    pub name: String,
    /// The template checksum recorded when it was applied.
    pub checksum: String,
    /// The names it was rendered with.
    pub names: String,
}

/// Applied migrations by version; empty when nothing was ever applied (no
/// keyspace or no `schema_migrations` table yet).
pub async fn applied(
    session: &Session,
    keyspace: &str,
) -> Result<BTreeMap<i32, AppliedMigration>, SchemaError> {
    let mut statement = Statement::new(format!(
        "SELECT version, name, checksum, names FROM {keyspace}.{MIGRATIONS_TABLE}"
    ));
    statement.set_page_size(1000);
    let result = match session.query_unpaged(statement, ()).await {
        Ok(result) => result,
        Err(err) if is_missing_schema(&err) => return Ok(BTreeMap::new()),
        Err(err) => return Err(SchemaError::from(err)),
    };
    let rows = result
        .into_rows_result()
        .map_err(|err| SchemaError::Database(err.to_string()))?;
    let mut applied = BTreeMap::new();
    for row in rows
        .rows::<(i32, Option<String>, Option<String>, Option<String>)>()
        .map_err(|err| SchemaError::Database(err.to_string()))?
    {
        let (version, name, checksum, names) =
            row.map_err(|err| SchemaError::Database(err.to_string()))?;
        applied.insert(
            version,
            AppliedMigration {
                name: name.unwrap_or_default(),
                checksum: checksum.unwrap_or_default(),
                names: names.unwrap_or_default(),
            },
        );
    }
    Ok(applied)
}

/// Compares what is applied with `migrations`: changed templates and other
/// names are errors; `Ok` lists the migrations still to apply, in order.
pub fn pending<'m>(
    config: &ScyllaConfig,
    migrations: &'m [Migration],
    applied: &BTreeMap<i32, AppliedMigration>,
) -> Result<Vec<&'m Migration>, SchemaError> {
    let mut pending = Vec::new();
    for migration in migrations {
        let names = names_parameter(config, migration);
        match applied.get(&migration.version) {
            Some(record) if record.checksum != migration.checksum() => {
                return Err(SchemaError::Changed {
                    version: migration.version,
                    name: migration.name.clone(),
                    applied: record.checksum.clone(),
                    bundled: migration.checksum(),
                })
            }
            Some(record) if record.names != names => {
                return Err(SchemaError::NamesChanged {
                    version: migration.version,
                    applied: record.names.clone(),
                    configured: names,
                })
            }
            Some(_) => {}
            None => pending.push(migration),
        }
    }
    pending.sort_by_key(|migration| migration.version);
    Ok(pending)
}

/// What a serving core checks at start-up: `Ok` when every migration of
/// `migrations` is applied, unchanged, with the configured names.
pub async fn check(
    session: &Session,
    config: &ScyllaConfig,
    migrations: &[Migration],
) -> Result<(), SchemaError> {
    let applied = applied(session, &config.keyspace).await?;
    let pending = pending(config, migrations, &applied)?;
    if pending.is_empty() {
        return Ok(());
    }
    Err(SchemaError::Outdated {
        keyspace: config.keyspace.clone(),
        missing: pending
            .iter()
            .map(|migration| migration.label())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_templates_render_with_every_placeholder_filled() {
        let tables = TableNames {
            chat_messages: "meno_chat".into(),
            ..TableNames::default()
        };
        for migration in bundled() {
            let statements = migration.render("ks", &tables).unwrap();
            assert!(
                !statements.is_empty(),
                "{} has no statement",
                migration.label()
            );
            for statement in &statements {
                assert!(!statement.contains("{{"), "{statement}");
                assert!(!statement.contains("--"), "comment left in {statement}");
                assert!(
                    statement.starts_with("CREATE TABLE IF NOT EXISTS ks."),
                    "{statement}"
                );
            }
        }
        let initial = bundled()[0].render("ks", &tables).unwrap();
        assert!(initial.iter().any(|s| s.contains("ks.meno_chat (")));
    }

    #[test]
    fn bundled_templates_use_no_scylla_only_syntax() {
        for migration in bundled() {
            let upper = migration.template.to_uppercase();
            for scylla_only in [
                "USING TIMEOUT",
                "BYPASS CACHE",
                "TABLETS",
                "PER PARTITION RATE",
            ] {
                let code: Vec<&str> = upper
                    .lines()
                    .filter(|line| !line.trim_start().starts_with("--"))
                    .collect();
                assert!(
                    !code.iter().any(|line| line.contains(scylla_only)),
                    "{} uses {scylla_only}",
                    migration.label()
                );
            }
        }
    }

    #[test]
    fn an_unknown_placeholder_is_an_error() {
        let migration = Migration::new(
            9,
            "bad",
            "CREATE TABLE {{keyspace}}.{{table.nope}} (a int PRIMARY KEY);",
        );
        let err = migration.render("ks", &TableNames::default()).unwrap_err();
        assert!(err.to_string().contains("{{table.nope}}"), "{err}");
    }

    #[test]
    fn changed_template_and_changed_names_are_refused() {
        let config = ScyllaConfig::local("ks");
        let migrations = vec![
            Migration::new(1, "a", "x {{table.presence}}"),
            Migration::new(2, "b", "y {{table.chat_by_sender_ref}}"),
        ];
        let mut applied = BTreeMap::new();
        applied.insert(
            1,
            AppliedMigration {
                name: "a".into(),
                checksum: migrations[0].checksum(),
                names: names_parameter(&config, &migrations[0]),
            },
        );
        let pending_versions: Vec<i32> = pending(&config, &migrations, &applied)
            .unwrap()
            .iter()
            .map(|m| m.version)
            .collect();
        assert_eq!(pending_versions, [2]);

        let edited = vec![Migration::new(1, "a", "x edited {{table.presence}}")];
        assert!(matches!(
            pending(&config, &edited, &applied),
            Err(SchemaError::Changed { version: 1, .. })
        ));
        let mut renamed = config.clone();
        renamed.tables.presence = "other_presence".into();
        assert!(matches!(
            pending(&renamed, &migrations, &applied),
            Err(SchemaError::NamesChanged { version: 1, .. })
        ));
        // A table migration 1 does not name may be renamed: only 2 sees it.
        let mut later = config.clone();
        later.tables.chat_by_sender_ref = "other_refs".into();
        assert!(pending(&later, &migrations, &applied).is_ok());
    }
}
