//! The four services of the production shape (Redis, PostgreSQL with pgvector, an S3 server,
//! FalkorDB) started for one test, `hbi api` / `hbi worker` processes pointed at them, and
//! each service's own client to read back what they stored. Shared by
//! `production_shape.rs` and `production_abuse.rs`.

#![allow(dead_code)] // each test binary uses a different part

use std::collections::BTreeSet;

use falkordb::{FalkorClientBuilder, FalkorConnectionInfo};
use futures::TryStreamExt;
use sea_orm::{Database, DatabaseConnection};

use crate::common::{Role, TestServer};
use crate::services::Service;

pub const BUCKET: &str = "hbi-books";
pub const GRAPH: &str = "hbi";

/// The four services of the production shape and the environment that points HBI at them.
pub struct Stack {
    pub redis: Service,
    pub postgres: Service,
    pub s3: Service,
    pub falkordb: Service,
    pub scratch: tempfile::TempDir,
    processes: std::sync::atomic::AtomicU32,
}

impl Stack {
    pub fn start() -> Self {
        Self {
            redis: Service::start("redis"),
            postgres: Service::start("postgres"),
            s3: Service::start("s3"),
            falkordb: Service::start("falkordb"),
            scratch: tempfile::tempdir().expect("scratch dir"),
            processes: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// The original HBI's variable names; the bucket does not exist yet (HBI creates it).
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("REDIS_URL", self.redis.url.clone()),
            ("DATABASE_URL", self.postgres.url.clone()),
            ("MINIO_ENDPOINT", self.s3.url.trim_start_matches("http://").to_owned()),
            ("MINIO_ACCESS_KEY", "hbi-test-access".to_owned()),
            ("MINIO_SECRET_KEY", "hbi-test-secret-key".to_owned()),
            ("MINIO_SECURE", "false".to_owned()),
            ("MINIO_BUCKET_NAME", BUCKET.to_owned()),
            ("FALKORDB_URL", self.falkordb.url.clone()),
            // A killed worker's job is taken over within seconds, not minutes.
            ("HBI__QUEUE__HEARTBEAT_SECS", "1".to_owned()),
            ("HBI__QUEUE__POLL_INTERVAL_MS", "200".to_owned()),
            ("HBI__QUEUE__RELAY_INTERVAL_MS", "500".to_owned()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect()
    }

    /// `hbi api` or `hbi worker`, with a scratch directory no other process shares.
    pub fn spawn(&self, role: Role, extra: &[(&str, &str)]) -> TestServer {
        let n = self.processes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = self.scratch.path().join(format!("{role:?}-{n}"));
        std::fs::create_dir_all(&dir).expect("process dir");
        let mut env = self.env();
        env.extend(
            extra
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned())),
        );
        let env: Vec<(&str, &str)> = env.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect();
        TestServer::spawn(role, &dir, &env)
    }

    pub async fn sql(&self) -> DatabaseConnection {
        Database::connect(self.postgres.url.as_str())
            .await
            .expect("connect to PostgreSQL")
    }

    pub fn s3_client(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .endpoint_url(self.s3.url.as_str())
            .force_path_style(true)
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "hbi-test-access",
                "hbi-test-secret-key",
                None,
                None,
                "test",
            ))
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// Every key in the bucket.
    pub async fn s3_keys(&self) -> BTreeSet<String> {
        let listing = self
            .s3_client()
            .list_objects_v2()
            .bucket(BUCKET)
            .max_keys(1000)
            .send()
            .await
            .expect("list the bucket");
        listing
            .contents()
            .iter()
            .filter_map(|object| object.key().map(str::to_owned))
            .collect()
    }

    pub async fn graph(&self) -> falkordb::AsyncGraph {
        let info: FalkorConnectionInfo = self.falkordb.url.as_str().try_into().expect("falkordb url");
        let client = FalkorClientBuilder::new_async()
            .with_connection_info(info)
            .build()
            .await
            .expect("falkordb client");
        client.select_graph(GRAPH)
    }

    /// Rows of a read-only Cypher query.
    pub async fn cypher_rows(&self, query: &str) -> Vec<falkordb::Row> {
        let mut graph = self.graph().await;
        let result = graph.ro_query(query).execute().await.expect("cypher query");
        result.data.try_collect().await.expect("cypher rows")
    }

    /// The string column `column` of a read-only Cypher query's rows.
    pub async fn cypher_strings(&self, query: &str, column: &str) -> Vec<String> {
        self.cypher_rows(query)
            .await
            .iter()
            .map(|row| row.try_get::<String>(column).expect("a string column"))
            .collect()
    }

    /// The count a query returns in its column `n`.
    pub async fn cypher_count(&self, query: &str) -> i64 {
        self.cypher_rows(query)
            .await
            .first()
            .and_then(|row| row.try_get::<i64>("n").ok())
            .expect("a count column named n")
    }

    pub async fn cypher_write(&self, query: &str) {
        self.graph().await.query(query).execute().await.expect("cypher write");
    }
}

/// The first column of every row of a PostgreSQL query, as text.
pub async fn sql_strings(db: &DatabaseConnection, sql: &str, values: Vec<sea_orm::Value>) -> Vec<String> {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    db.query_all_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, values))
        .await
        .expect("sql query")
        .iter()
        .map(|row| row.try_get_by_index::<String>(0).expect("a text column"))
        .collect()
}
