// hello_fs: the smallest backend, the one shown in README.md.
//
//   hello_fs && fuse-hostctl mount unix:/tmp/hello.sock /mnt/hello

#include <cerrno>
#include <cstring>
#include "client/filesystem.h"

// A read-only filesystem with one file, /hello.
class HelloFs : public fusehost::FileSystem {
  const std::string text_ = "hello, world\n";

  int Getattr(const fusehost::Context&, const std::string& path,
              const fusehost::FileInfo*, struct stat* st) override {
    if (path == "/") { st->st_mode = S_IFDIR | 0755; st->st_nlink = 2; return 0; }
    if (path != "/hello") return ENOENT;
    st->st_mode = S_IFREG | 0444;
    st->st_nlink = 1;
    st->st_size = text_.size();
    return 0;
  }
  int Readdir(const fusehost::Context&, const std::string& path, off_t,
              const fusehost::FileInfo&, std::vector<fusehost::DirEntry>* entries,
              bool* eof) override {
    if (path != "/") return ENOTDIR;
    fusehost::DirEntry e;
    e.name = "hello";
    e.st.st_mode = S_IFREG;
    entries->push_back(e);
    *eof = true;
    return 0;
  }
  int Read(const fusehost::Context&, const std::string& path, std::string* data,
           size_t size, off_t offset, const fusehost::FileInfo&) override {
    if (path != "/hello") return ENOENT;
    if (offset < static_cast<off_t>(text_.size())) *data = text_.substr(offset, size);
    return 0;
  }
};

int main() {
  HelloFs fs;
  return fusehost::Serve(fs, {.listen = "unix:/tmp/hello.sock"});
}
