// A flat in-memory file system of regular files, built in the boot test
// against the installed libfusehost-dev with nothing but
//   g++ note_fs.cc $(pkg-config --cflags --libs fusehost)
// so that the packaged header, archive and pkg-config file are shown to be
// enough for a backend.
//
//   note_fs unix:/run/note.sock

#include <cerrno>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>

#include "client/filesystem.h"

namespace {

class NoteFs : public fusehost::FileSystem {
 public:
  int Getattr(const fusehost::Context&, const std::string& path,
              const fusehost::FileInfo*, struct stat* st) override {
    if (path == "/") {
      st->st_mode = S_IFDIR | 0755;
      st->st_nlink = 2;
      return 0;
    }
    std::lock_guard<std::mutex> lock(mu_);
    auto it = files_.find(path);
    if (it == files_.end()) return ENOENT;
    st->st_mode = S_IFREG | 0644;
    st->st_nlink = 1;
    st->st_size = static_cast<off_t>(it->second.size());
    return 0;
  }

  int Readdir(const fusehost::Context&, const std::string& path, off_t,
              const fusehost::FileInfo&,
              std::vector<fusehost::DirEntry>* entries, bool* eof) override {
    if (path != "/") return ENOTDIR;
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, data] : files_) {
      fusehost::DirEntry e;
      e.name = name.substr(1);
      e.st.st_mode = S_IFREG;
      entries->push_back(e);
    }
    *eof = true;
    return 0;
  }

  int Create(const fusehost::Context&, const std::string& path, mode_t,
             fusehost::FileInfo*) override {
    if (path.find('/', 1) != std::string::npos) return EACCES;
    std::lock_guard<std::mutex> lock(mu_);
    files_.emplace(path, std::string());
    return 0;
  }

  // The daemon mounts with atomic O_TRUNC: an open with O_TRUNC truncates.
  int Open(const fusehost::Context&, const std::string& path,
           fusehost::FileInfo* fi) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = files_.find(path);
    if (it == files_.end()) return ENOENT;
    if (fi->flags & O_TRUNC) it->second.clear();
    return 0;
  }

  int Read(const fusehost::Context&, const std::string& path,
           std::string* data, size_t size, off_t offset,
           const fusehost::FileInfo&) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = files_.find(path);
    if (it == files_.end()) return ENOENT;
    if (offset < static_cast<off_t>(it->second.size())) {
      data->append(it->second.substr(offset, size));
    }
    return 0;
  }

  int Write(const fusehost::Context&, const std::string& path,
            const std::string& data, off_t offset, const fusehost::FileInfo&,
            size_t* written) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = files_.find(path);
    if (it == files_.end()) return ENOENT;
    std::string& content = it->second;
    if (content.size() < offset + data.size()) {
      content.resize(offset + data.size());
    }
    content.replace(offset, data.size(), data);
    *written = data.size();
    return 0;
  }

  int Truncate(const fusehost::Context&, const std::string& path, off_t size,
               const fusehost::FileInfo*) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = files_.find(path);
    if (it == files_.end()) return ENOENT;
    it->second.resize(size);
    return 0;
  }

  int Unlink(const fusehost::Context&, const std::string& path) override {
    std::lock_guard<std::mutex> lock(mu_);
    return files_.erase(path) ? 0 : ENOENT;
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::string> files_;  // "/name" -> contents
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: note_fs unix:/path.sock\n");
    return 2;
  }
  NoteFs fs;
  return fusehost::Serve(fs, {.listen = argv[1]});
}
