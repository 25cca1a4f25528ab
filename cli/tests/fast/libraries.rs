//! Libraries and access on the embedded shape: `common::libraries`' scenario on `hbi serve`.

use crate::common;

use common::TestServer;

#[tokio::test(flavor = "multi_thread")]
async fn a_key_reaches_only_its_libraries_on_the_embedded_shape() {
    let server = TestServer::start(&[]);
    common::libraries::a_key_reaches_only_its_libraries(&server, "embedded").await;
}
