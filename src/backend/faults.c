/* faults.c - fault injection around the real backend (TACIO_FAULTS).
 * Placeholder until the injector lands: never active. */
#include "backend/backend.h"

bool tacio__faults_active(void)
{
    return false;
}

const struct tacio_backend *tacio__faults_wrap(struct tacio_port *p)
{
    return p->be;
}
