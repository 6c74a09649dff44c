// Target for the demangling tests: C++ functions of the kinds users trace.
#include <cstdio>
#include <cstring>
#include <string>

class Server {
public:
	explicit Server(int base);
	virtual ~Server(); // virtual: a deleting destructor (D0) beside D1/D2
	int handle(int n);
	int handle(const std::string &s);

private:
	int base_;
};

__attribute__((noinline)) Server::Server(int base) : base_(base) {}
__attribute__((noinline)) Server::~Server() { std::puts("bye"); }
__attribute__((noinline)) int Server::handle(int n) { return base_ + n * 3; }
__attribute__((noinline)) int Server::handle(const std::string &s) { return base_ + (int)s.size(); }

namespace myapp {
__attribute__((noinline)) int parse(const char *s) { return (int)std::strlen(s) + 1; }
__attribute__((noinline)) int parse_all(const char *s, int n) { return parse(s) * n; }
} // namespace myapp

template <typename T> __attribute__((noinline)) T twice(T v) { return v + v; }

extern "C" __attribute__((noinline)) int plain_c(int x) { return x ^ 0x55; }

int main(int argc, char **argv)
{
	Server *s = new Server(argc);
	int r = s->handle(argc) + s->handle(std::string(argv[0]));
	r += myapp::parse_all(argv[0], argc) + twice<int>(argc) + (int)twice<long>(argc) + plain_c(argc);
	delete s;
	return r & 1;
}
