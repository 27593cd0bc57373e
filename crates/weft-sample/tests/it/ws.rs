//! WebSocket echo on `/ws`, with tokio-tungstenite as the client.

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::Sample;

#[tokio::test]
async fn websocket_echoes_text_and_binary_until_close() {
    let s = Sample::start(&["--name", "chat", "--version", "v2", "--http", "127.0.0.1:0"]);
    let url = format!("ws://{}/ws", s.addr("http"));
    let (mut ws, resp) = tokio_tungstenite::connect_async(&url).await.unwrap();
    assert_eq!(resp.status(), 101);
    assert_eq!(resp.headers()["x-sample-version"], "v2");

    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let messages = [
        Message::text("hello"),
        Message::binary(vec![0u8, 159, 146, 150, 255]), // not UTF-8
        Message::text(""),
        Message::binary(big),
    ];
    for message in messages {
        ws.send(message.clone()).await.unwrap();
        let echoed = ws.next().await.expect("an echo").unwrap();
        assert_eq!(echoed, message);
    }
    // A ping is answered with a pong carrying the same payload.
    ws.send(Message::Ping(b"p1".to_vec().into())).await.unwrap();
    let pong = ws.next().await.expect("a pong").unwrap();
    assert_eq!(pong, Message::Pong(b"p1".to_vec().into()));

    ws.send(Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    })))
    .await
    .unwrap();
    let close = ws.next().await.expect("the close reply").unwrap();
    assert!(
        matches!(close, Message::Close(Some(ref f)) if f.code == CloseCode::Normal),
        "{close:?}"
    );
    assert!(
        ws.next().await.is_none(),
        "the stream ends after the close handshake"
    );
}
