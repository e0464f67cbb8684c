//! Entry points for the fuzzers (`appliance/nas/fuzz`): bytes from outside through the
//! same code the sockets feed them to, record marking, the duplicate request cache and
//! every program's decoder, against a real [`Service`] on a real folder. Built only with
//! the `fuzzing` feature.

use std::io::Cursor;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;

use super::{answer, read_record};
use crate::connections::{Admitted, ConnectionLimits, Connections};
use crate::rpc::{Origin, Transport};
use crate::service::Service;

/// A service with one admitted TCP connection whose bytes the fuzzer supplies.
pub struct Harness {
    service: Arc<Service>,
    connection: Admitted,
    origin: Origin,
    /// The far end of the admitted connection, kept open.
    _client: TcpStream,
}

impl Harness {
    /// Serve `service`; a loopback connection stands for the client (the connection
    /// table wants a real socket), though its bytes come from the fuzzer.
    pub fn new(service: Service) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let client = TcpStream::connect(listener.local_addr()?)?;
        let (server_side, peer) = listener.accept()?;
        let connections = Connections::new(ConnectionLimits::default());
        let connection = connections
            .admit(peer, &server_side)
            .map_err(|_| std::io::Error::other("the connection table refused the harness"))?;
        let origin = Origin {
            peer,
            local: server_side.local_addr()?,
            transport: Transport::Tcp,
        };
        Ok(Self {
            service: Arc::new(service),
            connection,
            origin,
            _client: client,
        })
    }

    pub fn service(&self) -> &Service {
        &self.service
    }

    /// `bytes` as a TCP client's stream: each whole record is answered, as the
    /// connection's thread would; a bad mark or a short record ends the stream. Returns
    /// the replies' encoded bytes (record mark first, file data not included).
    pub fn tcp_stream(&self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut rd = Cursor::new(bytes);
        let mut replies = Vec::new();
        while let Ok(Some(record)) = read_record(&mut rd, &self.connection) {
            if let Some(reply) = answer(&self.service, &self.origin, &record) {
                replies.push(reply.encoded);
            }
        }
        replies
    }

    /// `bytes` as one UDP datagram (one call, no record mark).
    pub fn udp_datagram(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        let origin = Origin {
            transport: Transport::Udp,
            ..self.origin
        };
        answer(&self.service, &origin, bytes).map(|r| r.encoded)
    }

    /// Where the calls seem to come from.
    pub fn peer(&self) -> SocketAddr {
        self.origin.peer
    }
}
