// ethers.js v6 from npm, unmodified, driving the Yufu node over JSON-RPC as a dapp would.
//
//   node tests/node/ethers_client.mjs <node-url> < request.json
//
// The request names what to read and who sends:
//   {
//     "chainId": 20211,                      the chain id the node is configured with
//     "account": "0x…",                      a member whose balance and nonce are read
//     "memberKey": "0x…",                    a member's private key: it sends two transactions
//     "recipient": "0x…",                    receives a plain transfer
//     "blockWithTransactions": 1,            a block read with hashes and with full transactions
//     "contracts": {"Membership": {"address": "0x…", "abi": [...]},
//                   "EvidenceRegistry": {"address": "0x…", "abi": [...]}}
//   }
// and the script prints one JSON object of what ethers read, sent and was refused (integers as
// decimal strings, since JSON numbers cannot hold a uint256). tests/node/test_ethers.py compares
// it with what web3.py reads from the same node. Any failure other than the one refusal the
// script provokes on purpose exits non-zero with the error on stderr.

import { readFileSync } from "node:fs";

import {
  Contract,
  JsonRpcProvider,
  Network,
  Wallet,
  ZeroHash,
  hexlify,
  keccak256,
  randomBytes,
  version,
} from "ethers";

// The test node seals a block every 50 ms; ethers' defaults assume 12 s blocks.
const POLLING_INTERVAL_MS = 50;
const RECEIPT_TIMEOUT_MS = 60_000;
const SCRIPT_TIMEOUT_MS = 150_000;
const EVIDENCE_KIND_DOCUMENT = 1;
const ROLE_MERCHANT = 7;

// The receipt of a sent transaction, polled for. Not tx.wait(): ethers learns of a receipt
// only on a block number newer than the one its poller starts from, and this node seals no
// block while idle, so a transaction sealed between ethers' last receipt check and the poller's
// first eth_blockNumber is never noticed and wait() runs into its timeout.
async function receiptOf(provider, hash) {
  const deadline = Date.now() + RECEIPT_TIMEOUT_MS;
  for (;;) {
    const receipt = await provider.getTransactionReceipt(hash);
    if (receipt !== null) {
      return receipt;
    }
    if (Date.now() > deadline) {
      throw new Error(`no receipt for ${hash} within ${RECEIPT_TIMEOUT_MS} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, POLLING_INTERVAL_MS));
  }
}

function jsonOf(value) {
  return JSON.stringify(value, (_, v) => (typeof v === "bigint" ? v.toString() : v), 2);
}

function summariseBlock(block) {
  return {
    hash: block.hash,
    parentHash: block.parentHash,
    number: block.number,
    timestamp: block.timestamp,
    miner: block.miner,
    gasLimit: block.gasLimit,
    gasUsed: block.gasUsed,
    baseFeePerGas: block.baseFeePerGas,
    stateRoot: block.stateRoot,
    transactions: [...block.transactions],
  };
}

function summariseTransaction(tx) {
  return {
    hash: tx.hash,
    from: tx.from,
    to: tx.to,
    nonce: tx.nonce,
    type: tx.type,
    chainId: tx.chainId,
    value: tx.value,
    gasLimit: tx.gasLimit,
    maxFeePerGas: tx.maxFeePerGas,
    maxPriorityFeePerGas: tx.maxPriorityFeePerGas,
    blockNumber: tx.blockNumber,
    blockHash: tx.blockHash,
    index: tx.index,
  };
}

function summariseReceipt(receipt) {
  return {
    hash: receipt.hash,
    status: receipt.status,
    from: receipt.from,
    to: receipt.to,
    blockNumber: receipt.blockNumber,
    blockHash: receipt.blockHash,
    index: receipt.index,
    gasUsed: receipt.gasUsed,
    cumulativeGasUsed: receipt.cumulativeGasUsed,
    gasPrice: receipt.gasPrice,
    logs: receipt.logs.length,
  };
}

function summariseLog(log) {
  return {
    blockNumber: log.blockNumber,
    blockHash: log.blockHash,
    transactionHash: log.transactionHash,
    index: log.index,
    address: log.address,
    topics: [...log.topics],
  };
}

// What ethers surfaces when the node refuses: its own code and the JSON-RPC error beneath.
function describeRefusal(error) {
  return {
    code: error.code,
    shortMessage: error.shortMessage,
    method: error.payload?.method ?? null,
    rpcCode: error.error?.code ?? null,
    rpcMessage: error.error?.message ?? null,
  };
}

async function readChain(url, request) {
  // A provider that asks the node for its chain id, as a dapp pointed at a URL does.
  const detecting = new JsonRpcProvider(url);
  const detected = await detecting.getNetwork();
  detecting.destroy();

  const provider = new JsonRpcProvider(url, Network.from(request.chainId), {
    staticNetwork: true,
    pollingInterval: POLLING_INTERVAL_MS,
    // ethers answers a repeated request from a 250 ms cache. Against a chain that seals within
    // 50 ms that hands the second transaction the first one's "pending" nonce (NONCE_EXPIRED);
    // ethers' author advises turning the cache off for such chains (ethers-io/ethers.js#4549).
    cacheTimeout: -1,
  });
  const result = { version, chainId: detected.chainId };
  try {
    await readState(provider, request, result);
    await sendTransactions(provider, request, result);
  } finally {
    provider.destroy();
  }
  return result;
}

async function readState(provider, request, result) {
  const { Membership: membershipSpec } = request.contracts;
  // Pin one block so web3.py can read the very same state afterwards.
  const pinned = await provider.getBlockNumber();
  result.blockNumber = pinned;

  const hashesOnly = await provider.getBlock(request.blockWithTransactions, false);
  result.block = summariseBlock(hashesOnly);
  const full = await provider.getBlock(hashesOnly.hash, true);
  result.fullBlock = {
    ...summariseBlock(full),
    transactions: full.prefetchedTransactions.map(summariseTransaction),
  };
  result.pinnedBlock = summariseBlock(await provider.getBlock(pinned));
  result.missingBlock = await provider.getBlock(pinned + 1_000);

  result.balance = await provider.getBalance(request.account, pinned);
  const code = await provider.getCode(membershipSpec.address, pinned);
  result.code = { length: (code.length - 2) / 2, hash: keccak256(code) };
  result.nonce = await provider.getTransactionCount(request.account, pinned);
  result.pendingNonce = await provider.getTransactionCount(request.account, "pending");

  const fees = await provider.getFeeData();
  result.feeData = {
    gasPrice: fees.gasPrice,
    maxFeePerGas: fees.maxFeePerGas,
    maxPriorityFeePerGas: fees.maxPriorityFeePerGas,
  };

  const membership = new Contract(membershipSpec.address, membershipSpec.abi, provider);
  const stranger = Wallet.createRandom().address;
  result.calls = {
    accountIsMember: await membership.isMember(request.account, { blockTag: pinned }),
    strangerIsMember: await membership.isMember(stranger),
    validators: [...(await membership.getValidators({ blockTag: pinned }))],
  };

  const admitted = await membership.queryFilter(membership.filters.MemberAdmitted(), 0, pinned);
  result.memberAdmittedLogs = admitted.map((log) => ({
    ...summariseLog(log),
    account: log.args.account,
  }));
  const topic = membership.interface.getEvent("MemberAdmitted").topicHash;
  const accountTopic = "0x" + request.account.slice(2).toLowerCase().padStart(64, "0");
  const raw = await provider.getLogs({
    fromBlock: 0,
    toBlock: pinned,
    topics: [topic, accountTopic],
  });
  result.accountAdmittedLogs = raw.map(summariseLog);
}

async function sendTransactions(provider, request, result) {
  const { Membership: membershipSpec, EvidenceRegistry: evidenceSpec } = request.contracts;
  const member = new Wallet(request.memberKey, provider);

  // A member may not admit anyone: the revert comes back as Membership's custom error.
  const membership = new Contract(membershipSpec.address, membershipSpec.abi, member);
  try {
    await membership.admit.staticCall(Wallet.createRandom().address, ROLE_MERCHANT, ZeroHash);
    result.revert = null;
  } catch (error) {
    result.revert = {
      code: error.code,
      errorName: error.revert?.name ?? null,
      errorArgs: error.revert ? error.revert.args.map(String) : null,
      data: error.data ?? null,
    };
  }

  // A contract write a member is permitted to make: anchoring a document's hash.
  const evidence = new Contract(evidenceSpec.address, evidenceSpec.abi, member);
  const digest = hexlify(randomBytes(32));
  const subject = hexlify(randomBytes(32));
  const anchoring = await evidence.anchor(digest, EVIDENCE_KIND_DOCUMENT, subject);
  const anchored = await receiptOf(provider, anchoring.hash);
  const event = anchored.logs
    .map((log) => evidence.interface.parseLog(log))
    .find((parsed) => parsed?.name === "EvidenceAnchored");
  const stored = await evidence.lookupMemberAnchor(digest);
  result.anchor = {
    digest,
    subject,
    sent: summariseTransaction(anchoring),
    receipt: summariseReceipt(anchored),
    event: event ? { hash: event.args.hash, submitter: event.args.submitter } : null,
    stored: { blockNumber: stored.blockNumber, submitter: stored.submitter },
    fetched: summariseTransaction(await provider.getTransaction(anchoring.hash)),
  };

  // A plain transfer between accounts, also permitted to a member.
  const transfer = await member.sendTransaction({ to: request.recipient, value: 5n });
  const transferred = await receiptOf(provider, transfer.hash);
  result.transfer = {
    sent: summariseTransaction(transfer),
    receipt: summariseReceipt(transferred),
  };

  // Anyone else is refused when the node admits the transaction.
  const outsider = Wallet.createRandom().connect(provider);
  result.outsider = outsider.address;
  try {
    const sent = await outsider.sendTransaction({ to: request.recipient, value: 0n });
    result.refusal = null;
    result.outsiderSent = sent.hash;
  } catch (error) {
    result.refusal = describeRefusal(error);
  }
}

async function main() {
  const url = process.argv[2];
  if (!url) {
    throw new Error("usage: node ethers_client.mjs <node-url> < request.json");
  }
  const request = JSON.parse(readFileSync(0, "utf8"));
  const timer = setTimeout(() => {
    console.error(`ethers_client: gave up after ${SCRIPT_TIMEOUT_MS} ms`);
    process.exit(2);
  }, SCRIPT_TIMEOUT_MS);
  const result = await readChain(url, request);
  clearTimeout(timer);
  process.stdout.write(jsonOf(result) + "\n");
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
