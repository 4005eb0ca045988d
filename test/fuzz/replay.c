/* Replays a libFuzzer corpus without libFuzzer: runs LLVMFuzzerTestOneInput once per file of
 * each directory or file given. Used when the compiler is not clang, so the seeds still run
 * under the build's sanitizers in ctest. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    return -1;
  }
  uint8_t *buf = malloc(1 << 20);
  size_t n = buf ? fread(buf, 1, 1 << 20, f) : 0;
  fclose(f);
  if (!buf)
    return -1;
  /* Copy to an exact-size allocation so ASan catches reads past the input. */
  uint8_t *exact = malloc(n ? n : 1);
  for (size_t i = 0; i < n; i++)
    exact[i] = buf[i];
  free(buf);
  LLVMFuzzerTestOneInput(exact, n);
  free(exact);
  return 0;
}

int main(int argc, char **argv) {
  int count = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      perror(argv[i]);
      return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
      if (replay_file(argv[i]) != 0)
        return 1;
      count++;
      continue;
    }
    DIR *d = opendir(argv[i]);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
      if (e->d_name[0] == '.')
        continue;
      char path[4096];
      snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
      if (replay_file(path) != 0)
        return 1;
      count++;
    }
    if (d)
      closedir(d);
  }
  if (count == 0) {
    fprintf(stderr, "no corpus inputs found\n");
    return 1;
  }
  printf("replayed %d inputs\n", count);
  return 0;
}
