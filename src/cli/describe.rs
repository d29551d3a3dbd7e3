//! `switchyard describe`: a queue's or topic's page, as the console's page shows
//! it, for scripts.

use super::connect::ConnArgs;

/// `switchyard describe`.
#[derive(clap::Args, Debug)]
pub struct DescribeArgs {
    /// The queue to describe (with `--topic`, a topic).
    pub name: String,
    /// NAME is a topic.
    #[arg(long)]
    pub topic: bool,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Prints the page as one JSON object (docs/PROTOCOL.md, `describe`).
pub async fn describe(args: DescribeArgs) -> anyhow::Result<()> {
    let client = args.conn.connect().await?;
    let page = if args.topic {
        serde_json::to_string(&client.describe_topic(&args.name).await?)?
    } else {
        serde_json::to_string(&client.describe_queue(&args.name).await?)?
    };
    say!("{page}");
    client.close().await;
    Ok(())
}
