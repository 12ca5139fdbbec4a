/*
 * board.h: the page that the programs board and pin share (progs/board.c,
 * progs/pin.c).  board makes it and publishes its address with the key
 * that reads and writes it under the name "board.page"; anyone who looks
 * the name up may map it, at the same address in every domain.
 */
#ifndef PSYCHE_BOARD_H
#define PSYCHE_BOARD_H

#include <stdint.h>

#define BOARD_MAGIC 0x44524F42u         /* "BORD" */
#define BOARD_TEXT  120

struct board_page {
    uint32_t magic;                     /* board: BOARD_MAGIC once the page is ready */
    uint32_t posts;                     /* board: the posts it took */
    uint32_t board_domain;              /* board: its domain */
    uint32_t writer_domain;             /* the client: who wrote `note` */
    char note[BOARD_TEXT];              /* the client writes it, then calls board.post */
    char reply[BOARD_TEXT];             /* board.post writes it: what board read, and from whom */
};

#endif
