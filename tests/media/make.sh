#!/usr/bin/env bash
# Regenerates the committed test media (a few hundred KiB in all) with Debian's ffmpeg:
# a 4 s live-style MPEG-TS, the same as MP4, and HLS cuts of it, plain and AES-128.
set -euo pipefail
cd "$(dirname "$0")"
src=(-f lavfi -i testsrc=size=160x120:rate=15 -f lavfi -i sine=frequency=440:sample_rate=22050 -t 4)
enc=(-c:v libx264 -preset veryfast -b:v 150k -g 15 -c:a aac -b:a 32k)
ffmpeg -v error -y "${src[@]}" "${enc[@]}" -f mpegts live.ts
ffmpeg -v error -y "${src[@]}" "${enc[@]}" -movflags +faststart vod.mp4
mkdir -p hls hls-aes
ffmpeg -v error -y -i live.ts -c copy -f hls -hls_time 1 -hls_list_size 0 \
  -hls_segment_filename 'hls/seg%d.ts' hls/index.m3u8
printf '0123456789abcdef' > hls-aes/key.bin
keyinfo=$(mktemp)
printf 'key.bin\nhls-aes/key.bin\n00000000000000000000000000000001\n' > "$keyinfo"
ffmpeg -v error -y -i live.ts -c copy -f hls -hls_time 1 -hls_list_size 0 \
  -hls_key_info_file "$keyinfo" -hls_segment_filename 'hls-aes/seg%d.ts' hls-aes/index.m3u8
rm -f "$keyinfo"
