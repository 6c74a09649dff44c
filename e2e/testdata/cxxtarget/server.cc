// A C++ target: overloaded member functions, a namespace function and a
// template, called a known number of times. Usage: cxxtarget N
#include <cstdio>
#include <cstdlib>
#include <string>

namespace myapp {
__attribute__((noinline)) int parse(const char *s) { return s[0] == '-' ? -1 : 1; }
}

class Server {
  public:
	__attribute__((noinline)) int handle(int x) { return x * 2; }
	__attribute__((noinline)) int handle(const std::string &s) { return (int)s.size(); }
};

template <typename T> __attribute__((noinline)) T twice(T x) { return x + x; }

int main(int argc, char **argv)
{
	if (argc != 2) {
		std::fprintf(stderr, "usage: cxxtarget N\n");
		return 2;
	}
	int n = std::atoi(argv[1]);
	Server s;
	long total = 0;
	for (int i = 0; i < n; i++) {
		total += s.handle(i);                      // n calls
		total += s.handle(std::string(i % 7, 'x')); // n calls
		total += myapp::parse(i % 2 ? "-" : "+");   // n calls
		if (i % 2)
			total += twice<long>(i);            // n/2 calls
	}
	std::printf("total=%ld\n", total);
	return 0;
}
