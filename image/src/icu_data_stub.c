/*
 * An ICU common-data library that holds no data, put in the image in place of Debian's
 * libicudata (30 MiB unpacked, 8.8 MiB of the compressed initramfs).
 *
 * Samba's libsamba-util links ICU for one thing: its UTF8-NFC and UTF8-NFD character
 * sets (the "any-nfc" and "any-nfd" transliterators), which a `unix charset` setting
 * would ask for and Rushes never writes. Nothing else in the image loads ICU. Even so,
 * they keep working: the normalization data they use is compiled into libicuuc, not
 * read from this library (checked with Debian's ICU 72: "any-nfd" turns U+00E9 into
 * U+0065 U+0301 with this library as with the real one). Anything that does need the
 * data library gets ICU's "missing resource" error, never a crash.
 *
 * The layout is ICU's "ToCP" table of contents (see ICU's udata.cpp and the UDataInfo
 * structure of udata.h): a 32-byte header, then a count of entries, here none. mkimage
 * compiles this with the entry point's name for the packaged ICU's major version
 * (ICU_DATA_ENTRY, e.g. icudt72_dat).
 */
#include <stdint.h>

struct data_info {
	uint16_t size;
	uint16_t reserved_word;
	uint8_t is_big_endian;
	uint8_t charset_family;
	uint8_t sizeof_uchar;
	uint8_t reserved_byte;
	uint8_t data_format[4];
	uint8_t format_version[4];
	uint8_t data_version[4];
};

struct common_data {
	uint16_t header_size;
	uint8_t magic1;
	uint8_t magic2;
	struct data_info info;
	uint8_t padding[8];
	uint32_t count;
	uint32_t reserved;
	struct {
		const char *name;
		const void *data;
	} toc[1];
};

__attribute__((visibility("default"))) const struct common_data ICU_DATA_ENTRY = {
	.header_size = 32,
	.magic1 = 0xda,
	.magic2 = 0x27,
	.info = {
		.size = sizeof(struct data_info),
		.is_big_endian = 0,
		.charset_family = 0, /* ASCII */
		.sizeof_uchar = 2,
		.data_format = { 'T', 'o', 'C', 'P' },
		.format_version = { 1, 0, 0, 0 },
	},
	.count = 0,
};
