//! What arrives on the card socket, either way: lines read within their bound, each
//! read as a JSON-RPC request as the card reads it (or refused with the spec's error)
//! and as an answer as rushesd's client reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rushes_firmware::card::{read_line, Request, Response, MAX_LINE};

fuzz_target!(|data: &[u8]| {
    let mut stream = data;
    while let Ok(Some(line)) = read_line(&mut stream) {
        assert!(line.len() as u64 <= MAX_LINE);
        match Request::parse(&line) {
            Ok(req) => assert!(req.invalid().is_none()),
            Err(refused) => {
                let code = refused.error.map(|e| e.code);
                assert!(matches!(code, Some(-32700 | -32600)), "{code:?}");
            }
        }
        let _ = Response::parse(&line);
    }
});
