// A node-smpp SMSC for the interop tests: binds the account smppgw/secret (any other system_id
// is bound, then unbound at once), answers submit_sm with a message id, enquire_link and unbind.
// Prints the port it listens on (127.0.0.1, ephemeral), then serves until killed.
"use strict";
const smpp = require("smpp");

let ids = 0;
const server = smpp.createServer(function (session) {
  const bind = function (pdu) {
    session.send(pdu.response());
    if (pdu.system_id !== "smppgw" || pdu.password !== "secret") {
      session.unbind();
    }
  };
  session.on("bind_transceiver", bind);
  session.on("bind_transmitter", bind);
  session.on("submit_sm", function (pdu) {
    ids += 1;
    session.send(pdu.response({ message_id: "node" + ids }));
  });
  session.on("enquire_link", function (pdu) {
    session.send(pdu.response());
  });
  session.on("unbind", function (pdu) {
    session.send(pdu.response());
    session.close();
  });
  session.on("error", function () {});
});
server.listen(0, "127.0.0.1", function () {
  process.stdout.write("port " + server.address().port + "\n");
});
