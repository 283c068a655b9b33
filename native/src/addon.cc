// tcpcopy's packet path: a TPACKET_V3 receive ring with a kernel BPF filter, and batched
// sending with sendmmsg. See ../README.md for the design; JavaScript walks the ring's blocks
// itself (src/io/ring.ts), this file only sets sockets up, waits and makes system calls.
#include <napi.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <netinet/in.h>
#include <pcap/pcap.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

namespace {

// An Error whose `code` property says what went wrong (JavaScript picks the message to show).
Napi::Error CodedError(Napi::Env env, const char* code, const std::string& msg, int err = 0) {
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, code));
  if (err) e.Set("errno", Napi::Number::New(env, err));
  return e;
}

std::string ErrnoText(const char* what, int err) { return std::string(what) + ": " + strerror(err); }

// Compiles a pcap filter for raw IPv4 data (the ring's SOCK_DGRAM frames start at the IP
// header). On failure returns false and sets `error` to libpcap's message.
bool CompileFilter(const std::string& filter, int snaplen, std::vector<sock_filter>* out, std::string* error) {
  pcap_t* p = pcap_open_dead(DLT_RAW, snaplen);
  if (!p) { *error = "pcap_open_dead failed"; return false; }
  bpf_program prog;
  if (pcap_compile(p, &prog, filter.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0) {
    *error = pcap_geterr(p);
    pcap_close(p);
    return false;
  }
  for (u_int i = 0; i < prog.bf_len; i++) {
    const bpf_insn& in = prog.bf_insns[i];
    out->push_back(sock_filter{in.code, in.jt, in.jf, in.k});
  }
  pcap_freecode(&prog);
  pcap_close(p);
  return true;
}

// ---------------------------------------------------------------------------------- Ring

class Ring : public Napi::ObjectWrap<Ring> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Ring", {
      InstanceMethod("start", &Ring::Start),
      InstanceMethod("stats", &Ring::Stats),
      InstanceMethod("close", &Ring::Close),
      InstanceAccessor("buffer", &Ring::Buffer, nullptr),
      InstanceAccessor("blockSize", &Ring::BlockSize, nullptr),
      InstanceAccessor("blockCount", &Ring::BlockCount, nullptr),
    });
  }

  // new Ring({ ifindex, allProtocols, ignoreOutgoing, filter, snaplen, blockSize, blockCount, timeoutMs, ipv6 })
  // ipv6: with allProtocols, IPv6 packets pass the prelude as well as IPv4 ones; without it,
  // the ring is bound to IPv6 (ETH_P_IPV6) instead of IPv4 (a second ring captures IPv6).
  explicit Ring(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Ring>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) throw Napi::TypeError::New(env, "Ring: options object expected");
    Napi::Object o = info[0].As<Napi::Object>();
    const int ifindex = o.Get("ifindex").ToNumber().Int32Value();
    const bool ipv6 = o.Has("ipv6") && o.Get("ipv6").ToBoolean();
    const bool allProtocols = o.Get("allProtocols").ToBoolean();
    const bool ignoreOutgoing = o.Get("ignoreOutgoing").ToBoolean();
    const std::string filter = o.Get("filter").ToString();
    const int snaplen = o.Get("snaplen").ToNumber().Int32Value();
    blockSize_ = o.Get("blockSize").ToNumber().Uint32Value();
    blockCount_ = o.Get("blockCount").ToNumber().Uint32Value();
    const unsigned timeoutMs = o.Get("timeoutMs").ToNumber().Uint32Value();
    if (blockSize_ < 4096 || (blockSize_ & (blockSize_ - 1)) != 0 || blockCount_ < 2 || blockCount_ > 65536 ||
        snaplen < 64 || snaplen > 65535 || blockSize_ < static_cast<uint32_t>(snaplen) + 128 || timeoutMs < 1) {
      throw CodedError(env, "ring-options", "ring: block size must be a power of two >= 4 KiB holding one packet of the snap length (64..65535), 2..65536 blocks, timeout >= 1 ms");
    }

    // The program: drop what is not IPv4 (when every protocol is bound), drop outgoing
    // packets (when asked), then the user's filter, or accept `snaplen` bytes.
    std::vector<sock_filter> prog;
    if (ignoreOutgoing) {
      prog.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, static_cast<uint32_t>(SKF_AD_OFF + SKF_AD_PKTTYPE)));
      prog.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PACKET_OUTGOING, 0, 0));  // jt patched below
    }
    if (allProtocols) {
      prog.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, static_cast<uint32_t>(SKF_AD_OFF + SKF_AD_PROTOCOL)));
      if (ipv6) prog.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ETH_P_IP, 2, 0));  // IPv4: skip the drop
      if (ipv6) prog.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ETH_P_IPV6, 1, 0));  // IPv6 too
      else prog.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ETH_P_IP, 1, 0));  // IPv4: skip the drop
    } else {
      prog.push_back(BPF_JUMP(BPF_JMP | BPF_JA, 1, 0, 0));  // jump over the drop
    }
    const size_t drop = prog.size();
    prog.push_back(BPF_STMT(BPF_RET | BPF_K, 0));
    if (ignoreOutgoing) prog[1].jt = static_cast<uint8_t>(drop - 2);
    std::vector<sock_filter> user;
    std::string perr;
    if (!filter.empty()) {
      if (!CompileFilter(filter, snaplen, &user, &perr)) {
        throw CodedError(env, "bad-filter", perr);
      }
    } else {
      user.push_back(BPF_STMT(BPF_RET | BPF_K, static_cast<uint32_t>(snaplen)));
    }
    prog.insert(prog.end(), user.begin(), user.end());
    if (prog.size() > BPF_MAXINSNS) throw CodedError(env, "bad-filter", "the filter compiles to more than 4096 BPF instructions");

    // Protocol 0: nothing is received until bind(), after the filter and the ring are set.
    fd_ = socket(AF_PACKET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
      int e = errno;
      throw CodedError(env, (e == EPERM || e == EACCES) ? "no-permission" : "socket", ErrnoText("AF_PACKET socket", e), e);
    }
    int v = TPACKET_V3;
    if (setsockopt(fd_, SOL_PACKET, PACKET_VERSION, &v, sizeof v) != 0) {
      Fail(env, "no-tpacket-v3", "PACKET_VERSION TPACKET_V3");
    }
    sock_fprog fp{static_cast<unsigned short>(prog.size()), prog.data()};
    if (setsockopt(fd_, SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof fp) != 0) {
      Fail(env, "bad-filter", "SO_ATTACH_FILTER");
    }
    if (ignoreOutgoing) {
      int one = 1;  // Linux >= 4.20; the filter's packet-type test covers older kernels.
      (void)setsockopt(fd_, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
    }
    tpacket_req3 req;
    memset(&req, 0, sizeof req);
    req.tp_block_size = blockSize_;
    req.tp_block_nr = blockCount_;
    req.tp_frame_size = 2048;
    req.tp_frame_nr = (blockSize_ / 2048) * blockCount_;
    req.tp_retire_blk_tov = timeoutMs;
    if (setsockopt(fd_, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) != 0) {
      Fail(env, errno == EINVAL ? "no-tpacket-v3" : "ring", "PACKET_RX_RING");
    }
    mapLen_ = static_cast<size_t>(blockSize_) * blockCount_;
    void* m = mmap(nullptr, mapLen_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (m == MAP_FAILED) Fail(env, "ring", "mmap of the receive ring");
    map_ = static_cast<uint8_t*>(m);
    sockaddr_ll sll;
    memset(&sll, 0, sizeof sll);
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(allProtocols ? ETH_P_ALL : ipv6 ? ETH_P_IPV6 : ETH_P_IP);
    sll.sll_ifindex = ifindex;
    if (bind(fd_, reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0) {
      Fail(env, errno == ENODEV || errno == ENXIO ? "no-device" : "bind", "bind of the AF_PACKET socket");
    }
    // Statistics count from here: reading them resets the kernel's counters.
    tpacket_stats_v3 st;
    socklen_t sl = sizeof st;
    (void)getsockopt(fd_, SOL_PACKET, PACKET_STATISTICS, &st, &sl);

    // The JavaScript view of the ring. The memory stays mapped until this ArrayBuffer is
    // collected, even after close(): a stale view can never touch unmapped memory.
    uint8_t* base = map_;
    size_t len = mapLen_;
    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, base, len, [len](Napi::Env, void* p) { munmap(p, len); });
    mapOwnedByBuffer_ = true;
    buffer_ = Napi::Persistent(ab);
  }

  ~Ring() override {
    StopAndClose();
    if (map_ && !mapOwnedByBuffer_) munmap(map_, mapLen_);
  }

 private:
  [[noreturn]] void Fail(Napi::Env env, const char* code, const char* what) {
    int e = errno;
    if (map_) { munmap(map_, mapLen_); map_ = nullptr; }
    close(fd_);
    fd_ = -1;
    throw CodedError(env, (e == EPERM || e == EACCES) ? "no-permission" : code, ErrnoText(what, e), e);
  }

  Napi::Value Buffer(const Napi::CallbackInfo&) { return buffer_.Value(); }
  Napi::Value BlockSize(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), blockSize_); }
  Napi::Value BlockCount(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), blockCount_); }

  // start(cb): cb(firstBlock, count) once per wakeup with every block the kernel has retired
  // (blocks first .. first+count-1, modulo blockCount); cb gives each back to the kernel when done
  // with it (block_status = TP_STATUS_KERNEL), and any it did not go back when cb returns.
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (fd_ < 0) throw CodedError(env, "closed", "ring is closed");
    if (!info[0].IsFunction()) throw Napi::TypeError::New(env, "start(callback) expected");
    if (polling_) throw CodedError(env, "started", "ring already started");
    cb_ = Napi::Persistent(info[0].As<Napi::Function>());
    env_ = env;
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    poll_ = new uv_poll_t;
    if (uv_poll_init(loop, poll_, fd_) != 0) { delete poll_; poll_ = nullptr; throw CodedError(env, "poll", "uv_poll_init failed"); }
    poll_->data = this;
    uv_poll_start(poll_, UV_READABLE, OnReadable);
    polling_ = true;
    Ref();  // alive while polling
    return env.Undefined();
  }

  static void OnReadable(uv_poll_t* h, int status, int) {
    Ring* r = static_cast<Ring*>(h->data);
    if (status < 0 || r->fd_ < 0) return;
    r->Deliver();
  }

  tpacket_block_desc* Block(uint32_t i) { return reinterpret_cast<tpacket_block_desc*>(map_ + static_cast<size_t>(i) * blockSize_); }

  void Deliver() {
    uint32_t n = 0;
    uint32_t i = cur_;
    seqs_.clear();
    while (n < blockCount_ && (__atomic_load_n(&Block(i)->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER)) {
      seqs_.push_back(Block(i)->hdr.bh1.seq_num);
      n++;
      i = (i + 1) % blockCount_;
    }
    if (n == 0) return;
    const uint32_t first = cur_;
    Napi::HandleScope scope(env_);
    try {
      cb_.MakeCallback(Napi::Env(env_).Global(), {Napi::Number::New(env_, first), Napi::Number::New(env_, n)});
    } catch (const Napi::Error& e) {
      Release(first, n);
      napi_fatal_exception(env_, e.Value());
      return;
    }
    Release(first, n);
  }

  // The callback gives each block back as it finishes it (ring.ts); this releases the ones it
  // did not (a throw, another caller). A block already given back may have been filled again by
  // the kernel since: its sequence number then differs from the one read above, and it stays.
  void Release(uint32_t first, uint32_t n) {
    for (uint32_t k = 0; k < n; k++) {
      tpacket_block_desc* b = Block((first + k) % blockCount_);
      if ((__atomic_load_n(&b->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER) && b->hdr.bh1.seq_num == seqs_[k]) {
        __atomic_store_n(&b->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
      }
    }
    cur_ = (first + n) % blockCount_;
  }

  // stats() -> [packets, drops, queue freezes], cumulative since the ring was opened.
  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (fd_ >= 0) {
      tpacket_stats_v3 st;
      socklen_t sl = sizeof st;
      if (getsockopt(fd_, SOL_PACKET, PACKET_STATISTICS, &st, &sl) == 0) {
        // tp_packets counts every packet the filter accepted, dropped ones included.
        packets_ += st.tp_packets;
        drops_ += st.tp_drops;
        freezes_ += st.tp_freeze_q_cnt;
      }
    }
    Napi::Array a = Napi::Array::New(env, 3);
    a.Set(0u, Napi::Number::New(env, static_cast<double>(packets_)));
    a.Set(1u, Napi::Number::New(env, static_cast<double>(drops_)));
    a.Set(2u, Napi::Number::New(env, static_cast<double>(freezes_)));
    return a;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    StopAndClose();
    return info.Env().Undefined();
  }

  void StopAndClose() {
    if (polling_) {
      polling_ = false;
      uv_poll_stop(poll_);
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
      cb_.Reset();
      Unref();
    }
    if (fd_ >= 0) { close(fd_); fd_ = -1; }
  }

  int fd_ = -1;
  uint8_t* map_ = nullptr;
  size_t mapLen_ = 0;
  bool mapOwnedByBuffer_ = false;
  uint32_t blockSize_ = 0;
  uint32_t blockCount_ = 0;
  uint32_t cur_ = 0;
  uv_poll_t* poll_ = nullptr;
  bool polling_ = false;
  napi_env env_ = nullptr;
  Napi::FunctionReference cb_;
  Napi::Reference<Napi::ArrayBuffer> buffer_;
  uint64_t packets_ = 0, drops_ = 0, freezes_ = 0;
  std::vector<uint64_t> seqs_;
};

// -------------------------------------------------------------------------------- Sender

constexpr unsigned kBatch = 1024;  // UIO_MAXIOV: the most messages one sendmmsg takes

// The batched sender's state, shared with JavaScript (src/io/mmsg-sender.ts) through two typed
// arrays given to attach(): JavaScript appends messages to the arena and its index and moves
// ctl[kCount] and ctl[kUsed]; this side sends them. ctl: Int32Array of kCtlLen, st: Float64Array
// of kStatLen (counters that JavaScript reads when it reports).
enum Ctl { kCount = 0, kHead, kUsed, kBlocked, kCounted, kCtlLen };
enum Stat { kSent = 0, kErrors, kTooBig, kCalls, kFlushes, kEagain, kEnobufs, kLastErrno, kQueued, kStatLen };

class Sender : public Napi::ObjectWrap<Sender> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Sender", {
      InstanceMethod("flush", &Sender::Flush),
      InstanceMethod("attach", &Sender::Attach),
      InstanceMethod("flushNow", &Sender::FlushNow),
      InstanceMethod("close", &Sender::Close),
    });
  }

  // new Sender({ kind: 'ip' | 'ip6' | 'link', ifindex, sndbuf, qdiscBypass })
  // 'ip6': an AF_INET6 raw socket; IPPROTO_RAW there also means the header is ours (Linux sets
  // IPV6_HDRINCL for it), and each message goes to the sockaddr_in6 of its own destination.
  explicit Sender(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Sender>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) throw Napi::TypeError::New(env, "Sender: options object expected");
    Napi::Object o = info[0].As<Napi::Object>();
    const std::string kind = o.Get("kind").ToString().Utf8Value();
    link_ = kind == "link";
    ip6_ = kind == "ip6";
    const int ifindex = o.Get("ifindex").ToNumber().Int32Value();
    const int sndbuf = o.Get("sndbuf").ToNumber().Int32Value();
    if (link_) {
      // Protocol 0: this socket never receives.
      fd_ = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    } else {
      fd_ = socket(ip6_ ? AF_INET6 : AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_RAW);
    }
    if (fd_ < 0) {
      int e = errno;
      throw CodedError(env, (e == EPERM || e == EACCES) ? "no-permission" : "socket",
                       ErrnoText(link_ ? "AF_PACKET socket" : ip6_ ? "raw IPv6 socket" : "raw IP socket", e), e);
    }
    if (sndbuf > 0 && setsockopt(fd_, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf) != 0) {
      (void)setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    }
    memset(&ll_, 0, sizeof ll_);
    if (link_) {
      ll_.sll_family = AF_PACKET;
      ll_.sll_protocol = htons(ETH_P_IP);
      ll_.sll_ifindex = ifindex;
      // Each frame goes with the address of its protocol (ll_ IPv4, ll6_ IPv6), so that the
      // kernel's skb->protocol is right (qdisc classification, a NIC's offloads). The socket is
      // bound with protocol 0: bound to a protocol, it would also receive (a copy of every
      // inbound IPv4 packet on the device, queued until its buffer is full).
      ll6_ = ll_;
      ll6_.sll_protocol = htons(ETH_P_IPV6);
      sockaddr_ll bound = ll_;
      bound.sll_protocol = 0;
      if (bind(fd_, reinterpret_cast<sockaddr*>(&bound), sizeof bound) != 0) {
        int e = errno;
        close(fd_);
        fd_ = -1;
        throw CodedError(env, e == ENODEV ? "no-device" : "bind", ErrnoText("bind of the sending AF_PACKET socket", e), e);
      }
      if (o.Get("qdiscBypass").ToBoolean()) {
        int one = 1;
        (void)setsockopt(fd_, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
      }
    }
    msgs_.resize(kBatch);
    iovs_.resize(kBatch);
    dsts_.resize(kBatch);
    if (ip6_) dsts6_.resize(kBatch);
  }

  ~Sender() override { StopAndClose(); }

 private:
  // flush(arena, meta, first, count, out) -> messages processed (sent or failed for good).
  // meta[2i], meta[2i+1]: offset and length of message i in arena. Stops early on EAGAIN
  // (out[3] = 1) or ENOBUFS (out[3] = 2); the rest stays for a later call.
  // out: [0] sent, [1] failed, [2] last errno of a failure, [3] stop reason, [4] EMSGSIZE, [5] calls.
  // (The daemons use attach(); this one-shot form serves tests and tools.)
  Napi::Value Flush(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (fd_ < 0) throw CodedError(env, "closed", "sender is closed");
    Napi::Buffer<uint8_t> arena = info[0].As<Napi::Buffer<uint8_t>>();
    Napi::Uint32Array meta = info[1].As<Napi::Uint32Array>();
    const uint32_t first = info[2].As<Napi::Number>().Uint32Value();
    const uint32_t count = info[3].As<Napi::Number>().Uint32Value();
    Napi::Int32Array out = info[4].As<Napi::Int32Array>();
    if (static_cast<size_t>(first + count) * 2 > meta.ElementLength() || out.ElementLength() < 6) {
      throw Napi::RangeError::New(env, "flush: meta or out too short");
    }
    const uint32_t done = SendRange(arena.Data(), arena.Length(), meta.Data(), first, count, out.Data());
    return Napi::Number::New(env, done);
  }

  // Sends messages first .. first+count-1 of the arena, as far as the socket takes them.
  // out as for flush(). Returns the messages processed.
  uint32_t SendRange(uint8_t* base, size_t alen, const uint32_t* m, uint32_t first, uint32_t count, int32_t* o) {
    for (int k = 0; k < 6; k++) o[k] = 0;
    uint32_t done = 0;
    while (done < count) {
      const uint32_t k = std::min<uint32_t>(kBatch, count - done);
      for (uint32_t j = 0; j < k; j++) {
        const uint32_t idx = first + done + j;
        uint32_t off = m[2 * idx], len = m[2 * idx + 1];
        if (static_cast<size_t>(off) + len > alen) { off = 0; len = 0; }  // never read outside the arena
        iovs_[j].iov_base = base + off;
        iovs_[j].iov_len = len;
        mmsghdr& h = msgs_[j];
        memset(&h, 0, sizeof h);
        h.msg_hdr.msg_iov = &iovs_[j];
        h.msg_hdr.msg_iovlen = 1;
        if (ip6_) {
          SetDestination6(h, j, base + off, len);
        } else if (link_) {
          const bool six = len >= 14 && base[off + 12] == 0x86 && base[off + 13] == 0xdd;
          h.msg_hdr.msg_name = six ? &ll6_ : &ll_;
          h.msg_hdr.msg_namelen = sizeof ll_;
        } else {
          sockaddr_in& d = dsts_[j];
          memset(&d, 0, sizeof d);
          d.sin_family = AF_INET;
          if (len >= 20) memcpy(&d.sin_addr, base + off + 16, 4);  // the packet's own destination
          h.msg_hdr.msg_name = &d;
          h.msg_hdr.msg_namelen = sizeof d;
        }
      }
      o[5]++;
      int r = sendmmsg(fd_, msgs_.data(), k, 0);
      if (r > 0) { done += r; o[0] += r; continue; }
      int e = errno;
      if (r == 0 || e == EINTR) continue;
      if (e == EAGAIN || e == EWOULDBLOCK) { o[3] = 1; break; }
      if (e == ENOBUFS) { o[3] = 2; break; }
      // This message fails for good (too long, unreachable, refused by a firewall): skip it.
      o[1]++;
      o[2] = e;
      if (e == EMSGSIZE) o[4]++;
      done++;
    }
    return done;
  }

  // The IPv6 packet's own destination (bytes 24..39 of its fixed header) as message j's address.
  void SetDestination6(mmsghdr& h, uint32_t j, const uint8_t* pkt, uint32_t len) {
    sockaddr_in6& d = dsts6_[j];
    memset(&d, 0, sizeof d);
    d.sin6_family = AF_INET6;
    if (len >= 40) memcpy(&d.sin6_addr, pkt + 24, 16);
    h.msg_hdr.msg_name = &d;
    h.msg_hdr.msg_namelen = sizeof d;
  }

  // attach(arena, meta, ctl, st): from now on this side sends what JavaScript appends, at the
  // end of each event-loop turn's poll phase (uv_check: after the ring's and the sockets'
  // callbacks) and before the loop blocks (uv_prepare: after timers), with no JavaScript call.
  // When the socket is full (EAGAIN) the rest waits for writability, after ENOBUFS for 1 ms;
  // ctl[kBlocked] says so meanwhile.
  Napi::Value Attach(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (fd_ < 0) throw CodedError(env, "closed", "sender is closed");
    if (attached_) throw CodedError(env, "attached", "sender already attached");
    if (!info[0].IsBuffer() || !info[1].IsTypedArray() || !info[2].IsTypedArray() || !info[3].IsTypedArray()) {
      throw Napi::TypeError::New(env, "attach(arena, meta, ctl, stats) expected");
    }
    Napi::Buffer<uint8_t> arena = info[0].As<Napi::Buffer<uint8_t>>();
    Napi::TypedArray meta = info[1].As<Napi::TypedArray>();
    Napi::TypedArray ctl = info[2].As<Napi::TypedArray>();
    Napi::TypedArray st = info[3].As<Napi::TypedArray>();
    if (meta.TypedArrayType() != napi_uint32_array || ctl.TypedArrayType() != napi_int32_array ||
        st.TypedArrayType() != napi_float64_array || ctl.ElementLength() < kCtlLen || st.ElementLength() < kStatLen ||
        meta.ElementLength() < 2) {
      throw Napi::TypeError::New(env, "attach: meta Uint32Array, ctl Int32Array(5), stats Float64Array(9) expected");
    }
    refs_[0] = Napi::Persistent(info[0].As<Napi::Object>());
    refs_[1] = Napi::Persistent(info[1].As<Napi::Object>());
    refs_[2] = Napi::Persistent(info[2].As<Napi::Object>());
    refs_[3] = Napi::Persistent(info[3].As<Napi::Object>());
    base_ = arena.Data();
    alen_ = arena.Length();
    meta_ = meta.As<Napi::Uint32Array>().Data();
    slots_ = static_cast<uint32_t>(meta.ElementLength() / 2);
    ctl_ = ctl.As<Napi::Int32Array>().Data();
    st_ = st.As<Napi::Float64Array>().Data();
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    loop_ = loop;
    check_ = new uv_check_t;
    prepare_ = new uv_prepare_t;
    uv_check_init(loop, check_);
    uv_prepare_init(loop, prepare_);
    check_->data = this;
    prepare_->data = this;
    // Neither keeps the process alive; a wait for writability does (packets are waiting).
    uv_unref(reinterpret_cast<uv_handle_t*>(check_));
    uv_unref(reinterpret_cast<uv_handle_t*>(prepare_));
    uv_check_start(check_, [](uv_check_t* h) { static_cast<Sender*>(h->data)->AutoFlush(); });
    uv_prepare_start(prepare_, [](uv_prepare_t* h) { static_cast<Sender*>(h->data)->AutoFlush(); });
    attached_ = true;
    return env.Undefined();
  }

  // flushNow(): sends what is waiting now (the arena is full, a tool wants to see the result),
  // even while a wait for writability is armed.
  Napi::Value FlushNow(const Napi::CallbackInfo& info) {
    if (attached_ && fd_ >= 0) Drain();
    return info.Env().Undefined();
  }

  void AutoFlush() {
    if (fd_ < 0 || ctl_[kBlocked] != 0 || ctl_[kCount] == ctl_[kHead]) return;
    Drain();
  }

  void Drain() {
    const int32_t count = ctl_[kCount];
    int32_t head = ctl_[kHead];
    if (count <= head || count > static_cast<int32_t>(slots_) || head < 0) {
      if (count == head) return;
      // JavaScript's index is out of range: nothing of it can be trusted. Drop it, counted.
      st_[kErrors] += count > head ? count - head : 0;
      ctl_[kCount] = ctl_[kHead] = ctl_[kUsed] = ctl_[kCounted] = 0;
      return;
    }
    int32_t o[6];
    st_[kFlushes] += 1;
    const uint32_t done = SendRange(base_, alen_, meta_, static_cast<uint32_t>(head), static_cast<uint32_t>(count - head), o);
    st_[kCalls] += o[5];
    st_[kSent] += o[0];
    if (o[1] != 0) { st_[kErrors] += o[1]; st_[kTooBig] += o[4]; st_[kLastErrno] = o[2]; }
    head += static_cast<int32_t>(done);
    if (head == count) {
      ctl_[kCount] = ctl_[kHead] = ctl_[kUsed] = ctl_[kCounted] = 0;
      ctl_[kBlocked] = 0;
      return;
    }
    // The socket is full: the rest waits (each packet counted once in kQueued).
    ctl_[kHead] = head;
    st_[kQueued] += count - std::max(head, ctl_[kCounted]);
    ctl_[kCounted] = count;
    ctl_[kBlocked] = 1;
    if (o[3] == 1) {
      st_[kEagain] += 1;
      if (!poll_) {
        poll_ = new uv_poll_t;
        uv_poll_init(loop_, poll_, fd_);
        poll_->data = this;
      }
      uv_poll_start(poll_, UV_WRITABLE, [](uv_poll_t* h, int, int) {
        Sender* s = static_cast<Sender*>(h->data);
        uv_poll_stop(h);
        s->Unblock();
      });
    } else {
      st_[kEnobufs] += 1;
      if (!timer_) {
        timer_ = new uv_timer_t;
        uv_timer_init(loop_, timer_);
        timer_->data = this;
      }
      uv_timer_start(timer_, [](uv_timer_t* h) { static_cast<Sender*>(h->data)->Unblock(); }, 1, 0);
    }
  }

  void Unblock() {
    if (fd_ < 0) return;
    ctl_[kBlocked] = 0;
    if (ctl_[kCount] != ctl_[kHead]) Drain();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    StopAndClose();
    return info.Env().Undefined();
  }

  template <typename T>
  static void CloseHandle(T*& h) {
    if (!h) return;
    uv_close(reinterpret_cast<uv_handle_t*>(h), [](uv_handle_t* x) { delete reinterpret_cast<T*>(x); });
    h = nullptr;
  }

  void StopAndClose() {
    if (poll_) uv_poll_stop(poll_);
    if (timer_) uv_timer_stop(timer_);
    if (check_) uv_check_stop(check_);
    if (prepare_) uv_prepare_stop(prepare_);
    CloseHandle(poll_);
    CloseHandle(timer_);
    CloseHandle(check_);
    CloseHandle(prepare_);
    if (attached_) {
      attached_ = false;
      for (auto& r : refs_) r.Reset();
    }
    if (fd_ >= 0) { close(fd_); fd_ = -1; }
  }

  int fd_ = -1;
  bool link_ = false;
  bool ip6_ = false;
  sockaddr_ll ll_;
  sockaddr_ll ll6_;  // the same with sll_protocol ETH_P_IPV6, for IPv6 frames
  std::vector<mmsghdr> msgs_;
  std::vector<iovec> iovs_;
  std::vector<sockaddr_in> dsts_;
  std::vector<sockaddr_in6> dsts6_;
  // attach(): the shared arena, index and state, and the handles that drive the sending.
  bool attached_ = false;
  Napi::ObjectReference refs_[4];
  uint8_t* base_ = nullptr;
  size_t alen_ = 0;
  const uint32_t* meta_ = nullptr;
  uint32_t slots_ = 0;
  int32_t* ctl_ = nullptr;
  double* st_ = nullptr;
  uv_loop_t* loop_ = nullptr;
  uv_check_t* check_ = nullptr;
  uv_prepare_t* prepare_ = nullptr;
  uv_poll_t* poll_ = nullptr;
  uv_timer_t* timer_ = nullptr;
};

// compileFilter(filter, snaplen) -> null, or libpcap's message when it rejects the filter.
Napi::Value CompileFilterJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<sock_filter> prog;
  std::string err;
  if (CompileFilter(info[0].ToString(), info[1].ToNumber().Int32Value(), &prog, &err)) return env.Null();
  return Napi::String::New(env, err);
}

Napi::Value StrError(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), strerror(info[0].ToNumber().Int32Value()));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Ring", Ring::Init(env));
  exports.Set("Sender", Sender::Init(env));
  exports.Set("compileFilter", Napi::Function::New(env, CompileFilterJs));
  exports.Set("strerror", Napi::Function::New(env, StrError));
  exports.Set("TPACKET_V3_HDR", Napi::Number::New(env, TPACKET_ALIGN(sizeof(tpacket3_hdr))));
  return exports;
}

}  // namespace

NODE_API_MODULE(tcpcopy_native, Init)
